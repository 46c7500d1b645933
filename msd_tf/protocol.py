"""Which digits train a model, which choose its recipe, and which are reported.

The paper's protocol (appendix B): train on MNIST's 60,000-digit training split and
report on the first 1000 test digits. Recipes and hyper-parameters are chosen on digits
held out of the training split (`TUNING`: train on its first 55,000, tune on the last
5,000), so that no test digit ever decides anything.

A folder that holds only the MNIST test files cannot follow it; training there falls
back to the protocol of the project's first releases (`TEST_ONLY`: train on
`test[1000:]`, report on `test[:1000]`), says so in one line and records it in the run's
summary.json, the SavedModel's msd_tf.json and the evaluation's results.json. Numbers of
the two protocols are not comparable.
"""

import dataclasses

from msd_tf import data


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A pair of disjoint splits: `train_split` trains, `eval_split` is evaluated."""

    name: str
    train_split: str
    eval_split: str
    description: str


PAPER = Protocol("paper", "train", "test[:1000]",
                 "the paper's: trained on the 60,000 training digits, evaluated on the "
                 "first 1000 test digits")
TUNING = Protocol("tuning", "train[:55000]", "train[55000:]",
                  "recipe search: trained on train[:55000], evaluated on train[55000:] "
                  "(held out of the training split; no test digit)")
TEST_ONLY = Protocol("test-only", "test[1000:]", "test[:1000]",
                     "not the paper's: the folder holds only the test split, so trained on "
                     "test[1000:] (9,000 digits), evaluated on test[:1000]")
PROTOCOLS = (PAPER, TUNING, TEST_ONLY)
SPLIT_SIZES = {"mnist": {"train": 60000, "test": 10000},
               "cifar10": {"train": 50000, "test": 10000}}


class ProtocolError(ValueError):
    """Splits that break the protocol (overlap, tuning on test digits); the message says
    which and what to use instead."""


def name_of(train_split: str, eval_split: str) -> str:
    """"paper", "tuning", "test-only" for those protocols' splits, else "custom"."""
    norm = lambda s: s.replace(" ", "")  # noqa: E731
    for p in PROTOCOLS:
        if (norm(train_split), norm(eval_split)) == (p.train_split, p.eval_split):
            return p.name
    return "custom"


def indices(split: str, dataset: str = "mnist") -> tuple[str, range]:
    """"test[1000:]" -> ("test", range(1000, 10000)) for `dataset`'s split sizes."""
    base, sl = data.parse_split(split)
    size = SPLIT_SIZES.get(dataset, SPLIT_SIZES["mnist"])[base]
    return base, range(*sl.indices(size))


def overlap(split_a: str, split_b: str, dataset: str = "mnist") -> int:
    """How many examples the two splits share."""
    (base_a, a), (base_b, b) = indices(split_a, dataset), indices(split_b, dataset)
    if base_a != base_b:
        return 0
    return max(0, min(a.stop, b.stop) - max(a.start, b.start))


def check_tuning(train_split: str, tune_split: str, dataset: str = "mnist") -> None:
    """Raises ProtocolError unless `tune_split` is training-split digits that
    `train_split` does not train on: a recipe is never chosen on test digits."""
    base, _ = data.parse_split(tune_split)
    if base != "train":
        raise ProtocolError(
            f"tuning split {tune_split!r} is test digits: recipes are chosen on digits held "
            f"out of the training split only (e.g. train on {TUNING.train_split}, tune on "
            f"{TUNING.eval_split}).")
    shared = overlap(train_split, tune_split, dataset)
    if shared:
        raise ProtocolError(f"tuning split {tune_split!r} shares {shared} digits with the "
                            f"training split {train_split!r}; tune on digits it never "
                            f"trains on (e.g. {TUNING.train_split} / {TUNING.eval_split}).")


def resolve(dataset: str, data_dir: str | None, train_split: str,
            eval_split: str) -> tuple[str, str, str | None]:
    """The splits a run uses with `data_dir`: the given ones, or, when the folder lacks
    the training split (the paper's protocol trains on it), `TEST_ONLY`'s training split
    in place of any slice of it.

    Returns:
      (train_split, eval_split, note): note is one line saying what fell back, or None.

    Raises:
      ProtocolError: the folder lacks the training split and the run evaluates on
        training digits (a tuning run) or on digits of test[1000:], or the two splits
        share examples.
      data.DataError: `data_dir` is set but does not exist.
    """
    data.check_source(data_dir)
    base, _ = data.parse_split(train_split)
    if base == "train" and not data.has_split(dataset, "train", data_dir) and \
            data.has_split(dataset, "test", data_dir):
        if data.parse_split(eval_split)[0] != "test" or \
                overlap(TEST_ONLY.train_split, eval_split, dataset):
            raise ProtocolError(
                f"--data_dir {data_dir} holds only the test split, so --train_split="
                f"{train_split} cannot be read; add the training files (e.g. "
                f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) or train on "
                f"--train_split={TEST_ONLY.train_split} --eval_split={TEST_ONLY.eval_split}.")
        return TEST_ONLY.train_split, eval_split, (
            f"{data_dir} holds only the test split: training on {TEST_ONLY.train_split} "
            f"(not the paper's protocol, which trains on the 60,000 training digits); "
            f"evaluating on {eval_split}.")
    shared = overlap(train_split, eval_split, dataset)
    if shared:
        raise ProtocolError(
            f"--train_split={train_split} and --eval_split={eval_split} share {shared} "
            f"examples; evaluate on examples never trained on (the paper's protocol: "
            f"--train_split={PAPER.train_split} --eval_split={PAPER.eval_split}).")
    return train_split, eval_split, None
