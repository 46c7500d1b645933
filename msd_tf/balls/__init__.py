"""One class per norm (`Ball`): its per-example norm, steepest-ascent step, projection,
ball-and-box projection and random start, registered by name in `BALLS`. The attacks,
`norms.per_example_norm` and the random starts dispatch here, so adding a norm (l_0,
l_p) is one file with a `Ball` subclass, its entry below and its name in
`threats.NORMS`. The math each class composes lives in `projections.py` and
`steps.py` (tested against float64 references); the NumPy norms of
`evaluation/checks.py` stay separate as the independent check.
"""

from msd_tf.balls.base import Ball
from msd_tf.balls.l1 import L1
from msd_tf.balls.l2 import L2
from msd_tf.balls.linf import Linf
from msd_tf.threats import check_norm

BALLS: dict[str, Ball] = {b.name: b for b in (Linf(), L2(), L1())}


def get(norm: str) -> Ball:
    """The `Ball` of `norm`; an unknown name raises the ValueError of `check_norm`."""
    check_norm(norm)
    return BALLS[norm]


__all__ = ["BALLS", "Ball", "get"]
