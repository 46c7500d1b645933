"""One class per norm (`Ball`): its per-example norm, steepest-ascent step, projection,
ball-and-box projection and random start, registered by name in `BALLS`. The attacks
dispatch here, by name (`get`, `per_example_norm`) or by threat model (`random_in_ball`,
`projected_step`, `project_onto`), so adding a norm (l_0, l_p) is one file with a
`Ball` subclass, its entry below and its name in `threats.NORMS`. The math each class
composes lives in `projections.py` and `steps.py` (tested against float64 references);
the NumPy norms of `evaluation/checks.py` stay separate as the independent check.

All functions are pure TensorFlow on batch-first tensors, safe inside `tf.function`,
XLA and replica context.
"""

import tensorflow as tf

from msd_tf import projections
from msd_tf.balls.base import Ball
from msd_tf.balls.l1 import L1
from msd_tf.balls.l2 import L2
from msd_tf.balls.linf import Linf
from msd_tf.threats import Norm, ThreatModel, check_norm

BALLS: dict[str, Ball] = {b.name: b for b in (Linf(), L2(), L1())}


def get(norm: str) -> Ball:
    """The `Ball` of `norm`; an unknown name raises the ValueError of `check_norm`."""
    check_norm(norm)
    return BALLS[norm]


def per_example_norm(t: tf.Tensor, norm: Norm) -> tf.Tensor:
    """The `norm` (l_inf, l_2, l_1) of every example of `t` (`[B, ...]` -> `[B]`)."""
    return get(norm).norm(t)


def random_in_ball(x: tf.Tensor, threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """A point drawn uniformly from the threat's ball (`Ball.random_start`: l_inf
    uniform coordinates; l_2 a Gaussian direction, l_1 a Laplace one, at radius
    eps * U^(1/n)), then clipped to the box. Clipping only shrinks coordinates, so the
    result stays in the ball."""
    return projections.project_box(x, get(threat.norm).random_start(x, threat, seed))


def projected_step(x: tf.Tensor, delta: tf.Tensor, grad: tf.Tensor,
                   threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """One steepest-ascent step of `threat.norm`, projected back onto ball and box
    (PAPER_NOTES sections 2-3): the new delta, not the step.

    Order (PAPER_NOTES section 3): clip `x + delta` to the box, then project onto
    the l_p ball; for l_2 and l_1 the ball projection shrinks delta toward 0, so the
    result lies in both sets. With `threat.l1.projection == "exact"` the l_1
    candidate uses `project_l1_box`, the exact projection onto the intersection.

    Args:
      x: clean inputs; delta: current perturbation; grad: loss gradient at delta.
      seed: `[2]` seed for this iteration (used by the l_1 step's random k).
    """
    ball = get(threat.norm)
    v = ball.steepest_step(grad, x + delta, threat, seed)
    return ball.project_with_box(x, delta + v, threat)


def project_onto(x: tf.Tensor, delta: tf.Tensor, threat: ThreatModel) -> tf.Tensor:
    """`delta` projected onto the threat's ball and the box (see `projected_step`)."""
    return get(threat.norm).project_with_box(x, delta, threat)


__all__ = ["BALLS", "Ball", "get", "per_example_norm", "project_onto", "projected_step",
           "random_in_ball"]
