"""`ThreatModel`: one l_p ball and how to attack it, plus the paper's presets.

Presets follow PAPER_NOTES section 5 (appendix C.1 of Maini, Wong, Kolter 2020).
"""

import dataclasses
import math

from msd_tf import norms


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
      random_start: start the first run at a random point of the ball as well.
      k_range: (k1, k2), the l_1 step moves k coordinates, k drawn uniformly from
        [k1, k2] at every iteration (appendix A.1). Ignored for l_inf and l_2.
      l1_gap: the A.2 restriction's distance from the box faces.
      l1_projection: "clip_then_project" (the paper's order, default) or
        "exact" (`projections.project_l1_box`, the projection onto ball and box).
    """

    norm: str
    eps: float
    alpha: float
    steps: int
    restarts: int = 1
    random_start: bool = False
    k_range: tuple[int, int] = (5, 20)
    l1_gap: float = 0.05
    l1_projection: str = "clip_then_project"

    def __post_init__(self):
        if self.norm not in norms.NORMS:
            raise ValueError(
                f"ThreatModel field `norm` must be one of {norms.NORMS}. "
                f"Received: norm={self.norm!r}"
            )
        for name in ("eps", "alpha"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"ThreatModel field `{name}` must be a finite number > 0. "
                    f"Received: {name}={value!r}"
                )
        for name in ("steps", "restarts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"ThreatModel field `{name}` must be an integer >= 1. "
                    f"Received: {name}={value!r}"
                )
        k1, k2 = self.k_range
        if not (isinstance(k1, int) and isinstance(k2, int) and 1 <= k1 <= k2):
            raise ValueError(
                "ThreatModel field `k_range` must be integers with 1 <= k1 <= k2. "
                f"Received: k_range={self.k_range!r}"
            )
        if not 0 <= self.l1_gap < 0.5:
            raise ValueError(
                f"ThreatModel field `l1_gap` must be in [0, 0.5). Received: l1_gap={self.l1_gap!r}"
            )
        if self.l1_projection not in ("clip_then_project", "exact"):
            raise ValueError(
                "ThreatModel field `l1_projection` must be 'clip_then_project' or "
                f"'exact'. Received: l1_projection={self.l1_projection!r}"
            )
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "k_range", (int(k1), int(k2)))

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


def preset(dataset: str, norm: str, *, phase: str = "test") -> ThreatModel:
    """The paper's single-norm PGD setting (appendix C.1).

    Args:
      dataset: "mnist" (also used for fashion_mnist) or "cifar10".
      norm: "linf", "l2" or "l1".
      phase: "train" or "test" (only the number of iterations differs).

    Returns:
      A `ThreatModel`. MNIST l_1 gets two runs (delta = 0, then a random start).
    """
    dataset = "mnist" if dataset == "fashion_mnist" else dataset
    if (dataset, norm) not in _PAPER_PGD:
        raise ValueError(
            f"No preset for dataset={dataset!r}, norm={norm!r}. Known: "
            f"{sorted(_PAPER_PGD)}"
        )
    if phase not in ("train", "test"):
        raise ValueError(f"Argument `phase` must be 'train' or 'test'. Received: phase={phase!r}")
    alpha, eps, train_steps, test_steps = _PAPER_PGD[(dataset, norm)]
    steps = train_steps if phase == "train" else test_steps
    restarts = 2 if (dataset, norm) == ("mnist", "l1") else 1
    return ThreatModel(norm=norm, eps=eps, alpha=alpha, steps=steps, restarts=restarts)


def presets(dataset: str, *, phase: str = "test") -> tuple[ThreatModel, ...]:
    """`preset` for l_inf, l_2 and l_1, in that order."""
    return tuple(preset(dataset, n, phase=phase) for n in norms.NORMS)


# MSD training settings (appendix C.2): alpha and eps per norm, one iteration count.
MSD_TRAIN = {
    "mnist": (
        (ThreatModel("linf", 0.3, 0.01, 100), ThreatModel("l2", 2.0, 0.1, 100),
         ThreatModel("l1", 10.0, 0.8, 100)),
        100,
    ),
    "cifar10": (
        (ThreatModel("linf", 0.03, 0.003, 50), ThreatModel("l2", 0.5, 0.02, 50),
         ThreatModel("l1", 12.0, 1.0, 50)),
        50,
    ),
}
