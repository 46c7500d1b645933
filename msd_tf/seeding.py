"""Every fixed number that splits one seed into independent random streams, in one place
(pure Python). Changing one changes every seeded result that depends on it.

- `stateless_fold_in` tags (`attacks/randomness.fold(seed, TAG)`): attack random starts,
  the l_1 step's k, E-AT's draw of a norm. Attacks also fold in small integers (1, 2,
  ...) for the draws inside one step; those are local to each function.
- `STRIDE`: the multiplier that packs two integers into one (`a * STRIDE + b`): CIFAR-10
  augmentation's (epoch, example) and foolbox's (seed, restart). A prime larger than any
  second integer used with it, so distinct pairs give distinct seeds.
"""

INIT_STREAM = 1_000_003  # an attack's random start in the ball
K_STREAM = 2_000_003  # the l_1 step's sparsity k, drawn per iteration
EAT_STREAM = K_STREAM + 1  # E-AT: the norm a batch trains on
STRIDE = 1_000_003


def pack(a: int, b: int) -> int:
    """One integer from two (`a * STRIDE + b`), for generators seeded by one integer."""
    return int(a) * STRIDE + int(b)
