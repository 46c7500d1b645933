"""Seeds and random streams, in one place: the fixed numbers that split one seed into
independent streams, and the stateless seed helpers that use them. Changing a number
changes every seeded result that depends on it.

Attacks and balls draw from `fold(seed, TAG)`, so an attack is a deterministic function
of its seed (a resumed run draws the same numbers):

- `stateless_fold_in` tags: `INIT_STREAM` (an attack's random start), `K_STREAM` (the
  l_1 step's k), `EAT_STREAM` (E-AT's draw of a norm). Attacks and balls also fold in
  small integers (1, 2, ...) for the draws inside one step; those are local to each
  function.
- `STRIDE`: the multiplier that packs two integers into one (`a * STRIDE + b`): CIFAR-10
  augmentation's (epoch, example) and foolbox's (seed, restart). A prime larger than any
  second integer used with it, so distinct pairs give distinct seeds.

Importing this module does not import TensorFlow (`data.py` relies on it); `as_seed`
and `fold` import it when called. Both are safe inside `tf.function`, XLA and replica
context.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

INIT_STREAM = 1_000_003  # an attack's random start in the ball
K_STREAM = 2_000_003  # the l_1 step's sparsity k, drawn per iteration
EAT_STREAM = K_STREAM + 1  # E-AT: the norm a batch trains on
STRIDE = 1_000_003


def pack(a: int, b: int) -> int:
    """One integer from two (`a * STRIDE + b`), for generators seeded by one integer."""
    return int(a) * STRIDE + int(b)


def as_seed(seed) -> "tf.Tensor":
    """An int, a scalar or a `[2]` tensor as a `[2]` int64 stateless-RNG seed."""
    import tensorflow as tf

    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def fold(seed: "tf.Tensor", data) -> "tf.Tensor":
    """A new `[2]` seed derived from the `[2]` seed `seed` and an integer `data`."""
    import tensorflow as tf

    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))
