"""Threat models and the paper's attack settings: the one place they are written down.

Pure Python (importing it loads no TensorFlow): configs, flags and reports import it.
Settings follow PAPER_NOTES sections 1, 5 and 6 (appendix C of Maini, Wong, Kolter 2020).
"""

import dataclasses
import math
from typing import Literal

Norm = Literal["linf", "l2", "l1"]
NORMS: tuple[str, ...] = ("linf", "l2", "l1")
K_RANGE = (5, 20)  # the l_1 step's k is drawn from [k1, k2] (appendix A.1)
QUERIES = 5000  # query budget of Square (AutoAttack's standard version) and Sparse-RS
L1_GAP = 0.05  # the A.2 restriction's distance from the box faces
L1_PROJECTIONS = ("clip_then_project", "exact")


def check_norm(norm: str) -> str:
    """Returns `norm` if it is one of `NORMS`, else raises a ValueError."""
    if norm not in NORMS:
        raise ValueError(f"Argument `norm` must be one of {NORMS}. Received: norm={norm!r}")
    return norm


@dataclasses.dataclass(frozen=True)
class L1Step:
    """What only the l_1 ball has: the paper's top-k step and its projection.

    Attributes:
      k_range: (k1, k2), the l_1 step moves k coordinates, k drawn uniformly from
        [k1, k2] at every iteration (appendix A.1).
      gap: the A.2 restriction's distance from the box faces, in [0, 0.5).
      projection: "clip_then_project" (the paper's order, default) or "exact"
        (`projections.project_l1_box`, the projection onto ball and box).
    """

    k_range: tuple[int, int] = K_RANGE
    gap: float = L1_GAP
    projection: str = "clip_then_project"

    def __post_init__(self):
        k1, k2 = self.k_range
        if not (isinstance(k1, int) and isinstance(k2, int) and 1 <= k1 <= k2):
            raise ValueError("L1Step field `k_range` must be integers with 1 <= k1 <= k2. "
                             f"Received: k_range={self.k_range!r}")
        if not 0 <= self.gap < 0.5:
            raise ValueError(f"L1Step field `gap` must be in [0, 0.5). Received: gap={self.gap!r}")
        if self.projection not in L1_PROJECTIONS:
            raise ValueError(f"L1Step field `projection` must be one of {L1_PROJECTIONS}. "
                             f"Received: projection={self.projection!r}")
        object.__setattr__(self, "k_range", (int(k1), int(k2)))


@dataclasses.dataclass(frozen=True)
class ThreatModel:
    """An l_p ball of radius `eps` and the PGD settings used to search it.

    Attributes:
      norm: "linf", "l2" or "l1".
      eps: radius, > 0.
      alpha: step length per iteration (for l_1, the l_1 length of the top-k step), > 0.
      steps: iterations per run, >= 1.
      restarts: runs per attack, >= 1. The first starts at delta = 0 unless
        `random_start`; every later run starts at a random point of the ball.
      random_start: start the first run at a random point of the ball as well (MSD:
        each example starts in one of the balls that ask for it, `attacks/msd.py`).
      l1: the l_1 ball's own settings (`L1Step`, or a dict of its fields as read from
        JSON); the default `L1Step()` for l_1, and None (nothing to set) for l_inf and
        l_2.
    """

    norm: str
    eps: float
    alpha: float
    steps: int
    restarts: int = 1
    random_start: bool = False
    l1: L1Step | None = None

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"ThreatModel field `norm` must be one of {NORMS}. "
                             f"Received: norm={self.norm!r}")
        for name in ("eps", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"ThreatModel field `{name}` must be a finite number > 0. "
                                 f"Received: {name}={value!r}")
        for name in ("steps", "restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ThreatModel field `{name}` must be an integer >= 1. "
                                 f"Received: {name}={value!r}")
        l1 = self.l1
        if self.norm != "l1":
            if l1 is not None:
                raise ValueError(f"ThreatModel field `l1` is the l_1 ball's; a {self.norm} "
                                 f"threat takes none. Received: l1={l1!r}")
        elif l1 is None:
            l1 = L1Step()
        elif isinstance(l1, dict):
            unknown = sorted(set(l1) - {f.name for f in dataclasses.fields(L1Step)})
            if unknown:
                raise ValueError(f"ThreatModel field `l1`: L1Step has no field(s) {unknown}.")
            l1 = L1Step(**{k: tuple(v) if k == "k_range" else v for k, v in l1.items()})
        elif not isinstance(l1, L1Step):
            raise ValueError(f"ThreatModel field `l1` must be an L1Step. Received: l1={l1!r}")
        object.__setattr__(self, "l1", l1)
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "alpha", float(self.alpha))

    def replace(self, **changes) -> "ThreatModel":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# (dataset, norm) -> (alpha, eps, train iterations, test iterations); PAPER_NOTES section 5.
_PAPER_PGD = {
    ("mnist", "linf"): (0.01, 0.3, 50, 100),
    ("mnist", "l2"): (0.1, 2.0, 100, 200),
    ("mnist", "l1"): (0.8, 10.0, 50, 100),
    ("cifar10", "linf"): (0.003, 0.03, 40, 100),
    ("cifar10", "l2"): (0.05, 0.5, 50, 500),
    ("cifar10", "l1"): (1.0, 12.0, 50, 100),
}


def paper_dataset(dataset: str) -> str:
    """The paper's data set whose settings `dataset` uses (Fashion-MNIST: MNIST's)."""
    return "mnist" if dataset == "fashion_mnist" else dataset


def radii(dataset: str) -> dict[str, float]:
    """The paper's radius per norm (PAPER_NOTES section 1)."""
    key = paper_dataset(dataset)
    if (key, "linf") not in _PAPER_PGD:
        raise ValueError(f"No paper radii for dataset={dataset!r}; known: mnist, "
                         "fashion_mnist, cifar10.")
    return {n: _PAPER_PGD[(key, n)][1] for n in NORMS}


def preset(dataset: str, norm: str, *, phase: str = "test") -> ThreatModel:
    """The paper's single-norm PGD setting (appendix C.1).

    Args:
      dataset: "mnist" (also used for fashion_mnist) or "cifar10".
      norm: "linf", "l2" or "l1".
      phase: "train" or "test" (only the number of iterations differs).

    Returns:
      A `ThreatModel`. MNIST l_1 gets two runs (delta = 0, then a random start).
    """
    key = paper_dataset(dataset)
    if (key, norm) not in _PAPER_PGD:
        raise ValueError(f"No preset for dataset={dataset!r}, norm={norm!r}. Known: "
                         f"{sorted(_PAPER_PGD)}")
    if phase not in ("train", "test"):
        raise ValueError(f"Argument `phase` must be 'train' or 'test'. Received: phase={phase!r}")
    alpha, eps, train_steps, test_steps = _PAPER_PGD[(key, norm)]
    steps = train_steps if phase == "train" else test_steps
    restarts = 2 if (key, norm) == ("mnist", "l1") else 1
    return ThreatModel(norm=norm, eps=eps, alpha=alpha, steps=steps, restarts=restarts)


def presets(dataset: str, *, phase: str = "test") -> tuple[ThreatModel, ...]:
    """`preset` for l_inf, l_2 and l_1, in that order."""
    return tuple(preset(dataset, n, phase=phase) for n in NORMS)


# The paper's training attacks per (dataset, adversary) (appendix C.2; single-norm PGD:
# section 6's step sizes with section 5's training iterations): norm -> (alpha, eps,
# iterations). MSD's iterations are its own (`MSD_TRAIN`). The flagfiles of flags/mnist
# and flags/cifar10 restate these; tests/test_flagfiles.py fails if either changes alone.
PAPER_TRAIN = {
    ("mnist", "linf"): {"linf": (0.01, 0.3, 50)},
    ("mnist", "l2"): {"l2": (0.1, 2.0, 100)},
    ("mnist", "l1"): {"l1": (1.0, 10.0, 50)},
    ("mnist", "msd"): {"linf": (0.01, 0.3, 100), "l2": (0.1, 2.0, 100), "l1": (0.8, 10.0, 100)},
    ("mnist", "max"): {"linf": (0.01, 0.3, 50), "l2": (0.1, 2.0, 100), "l1": (1.0, 12.0, 100)},
    ("mnist", "avg"): {"linf": (0.01, 0.3, 50), "l2": (0.2, 2.0, 100), "l1": (1.0, 12.0, 50)},
    ("cifar10", "linf"): {"linf": (0.003, 0.03, 40)},
    ("cifar10", "l2"): {"l2": (0.05, 0.5, 50)},
    ("cifar10", "l1"): {"l1": (1.0, 12.0, 50)},
    ("cifar10", "msd"): {"linf": (0.003, 0.03, 50), "l2": (0.02, 0.5, 50),
                         "l1": (1.0, 12.0, 50)},
    ("cifar10", "max"): {"linf": (0.005, 0.03, 40), "l2": (0.05, 0.3, 50),
                         "l1": (1.0, 12.0, 50)},
    ("cifar10", "avg"): {"linf": (0.003, 0.03, 40), "l2": (0.05, 0.3, 50),
                         "l1": (1.0, 12.0, 50)},
}


def paper_training(dataset: str, adversary: str, *, steps: int | None = None):
    """The ThreatModels flags/<dataset>/<adversary>.cfg trains with (`PAPER_TRAIN`),
    with `steps` iterations per norm if given; adversaries without a paper flagfile
    (none, eat) get MSD's. For benchmarks and checks that must time what is trained."""
    key = paper_dataset(dataset)
    settings = PAPER_TRAIN.get((key, adversary), PAPER_TRAIN[(key, "msd")])
    return tuple(ThreatModel(norm=n, eps=eps, alpha=alpha, steps=steps or iterations)
                 for n, (alpha, eps, iterations) in settings.items())


def _msd_train(dataset: str):
    settings = PAPER_TRAIN[(dataset, "msd")]
    threats = tuple(ThreatModel(norm=n, eps=eps, alpha=alpha, steps=steps)
                    for n, (alpha, eps, steps) in settings.items())
    return threats, settings["linf"][2]


# MSD training settings (appendix C.2): a ThreatModel per norm and one iteration count.
MSD_TRAIN = {d: _msd_train(d) for d in ("mnist", "cifar10")}
