"""Two models evaluated on the same examples, compared example by example.

Robust accuracies of 500 digits differ by a few points from seed to seed, so "model A is
more robust than model B" needs a test on the examples themselves: of the examples
robust under exactly one of the two models (the discordant pairs), how many are A's.
Under "equally robust" each such example is A's or B's with probability 1/2; the exact
two-sided sign test (McNemar's exact test) gives the p-value. Examples robust under
both, or under neither, carry no information about the difference.

    >>> from msd_tf.evaluation import compare
    >>> flags = compare.robust_flags("runs/union_full/eval")
    >>> compare.compare_flags(flags["eat"]["union"], flags["msd"]["union"])

`msd_tf/compare.py` is the command line.
"""

import json
import math
import os

import numpy as np

from msd_tf.evaluation import aggregate
from msd_tf.threats import NORMS

THREATS = (*NORMS, "union")


class CompareError(ValueError):
    """Bad input to a comparison; the message says which and how to fix it."""


def sign_test_p(only_a: int, only_b: int) -> float:
    """Exact two-sided sign-test p-value of `only_a` against `only_b` discordant
    examples: the probability, under Binomial(n, 1/2) with n = only_a + only_b, of a
    split at least as uneven as the observed one (1.0 when n = 0)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0; got {only_a}, {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2 ** n)


def robust_flags(eval_dir: str) -> dict:
    """model -> threat ("linf", "l2", "l1", "union") -> `[N]` bool robust flags, read
    from an `msd_tf.evaluate` output folder (results.json and per_example_<model>.npz),
    with "clean" -> the clean flags (the robust flags of a norm no attack ran at) and
    "example_key" -> the examples' content keys.

    Raises:
      CompareError: the folder or one of its files is missing or unreadable.
    """
    path = os.path.join(eval_dir, "results.json")
    try:
        with open(path) as f:
            results = json.load(f)
        suite, names = results["suite"], list(results["models"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompareError(f"cannot read {path} ({e}); give the --output_dir of an "
                           "msd_tf.evaluate run.") from e
    out = {}
    for name in names:
        per_path = os.path.join(eval_dir, f"per_example_{name}.npz")
        try:
            with np.load(per_path) as f:
                per = {k: f[k] for k in f.files}
            clean = per["clean"].astype(bool)
        except (OSError, ValueError, KeyError) as e:
            raise CompareError(f"cannot read {per_path} ({e}); re-run the evaluation into "
                               f"{eval_dir}.") from e
        broken = {n: b.astype(bool) for n, b in aggregate.broken_per_norm(per, suite).items()}
        flags = {n: clean & ~b for n, b in broken.items()}
        any_broken = np.zeros(len(clean), bool)
        for b in broken.values():
            any_broken |= b
        flags.update(union=clean & ~any_broken, clean=clean,
                     example_key=per.get("example_key"))
        out[name] = flags
    return out


def compare_flags(a: np.ndarray, b: np.ndarray) -> dict:
    """Robust accuracy of each, the discordant counts and the sign test's p-value."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise CompareError(f"the two models were evaluated on {len(a)} and {len(b)} "
                           "examples; compare evaluations of the same examples.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    return {"n": int(a.size), "acc_a": float(a.mean()), "acc_b": float(b.mean()),
            "only_a": only_a, "only_b": only_b, "both": int(np.sum(a & b)),
            "p": sign_test_p(only_a, only_b)}


def compare_models(flags: dict, a: str, b: str, threat: str = "union") -> dict:
    """`compare_flags` of models `a` and `b` of `robust_flags(...)` (which may merge
    several folders' models) at `threat`, checked to be the same examples."""
    for name in (a, b):
        if name not in flags:
            raise CompareError(f"no model {name!r}; the evaluation has {sorted(flags)}.")
        if threat not in flags[name]:
            raise CompareError(f"model {name!r} has no {threat} attacks; threats there: "
                               f"{[t for t in THREATS if t in flags[name]]}.")
    keys_a, keys_b = flags[a]["example_key"], flags[b]["example_key"]
    if keys_a is not None and keys_b is not None and not np.array_equal(keys_a, keys_b):
        raise CompareError(f"models {a!r} and {b!r} were evaluated on different examples; "
                           "compare evaluations of the same split and --num_examples.")
    return compare_flags(flags[a][threat], flags[b][threat])
