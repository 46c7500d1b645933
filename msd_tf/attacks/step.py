"""One projected steepest-ascent step of a threat model (PAPER_NOTES sections 2-3)."""

import tensorflow as tf

from msd_tf import balls
from msd_tf.threats import ThreatModel


def projected_step(x: tf.Tensor, delta: tf.Tensor, grad: tf.Tensor,
                   threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """One steepest-ascent step of `threat.norm`, projected back onto ball and box.

    Order (PAPER_NOTES section 3): clip `x + delta` to the box, then project onto
    the l_p ball; for l_2 and l_1 the ball projection shrinks delta toward 0, so the
    result lies in both sets. With `threat.l1_projection == "exact"` the l_1
    candidate uses `project_l1_box`, the exact projection onto the intersection.

    Args:
      x: clean inputs; delta: current perturbation; grad: loss gradient at delta.
      seed: `[2]` seed for this iteration (used by the l_1 step's random k).
    """
    ball = balls.get(threat.norm)
    v = ball.steepest_step(grad, x + delta, threat, seed)
    return ball.project_with_box(x, delta + v, threat)


def project_onto(x: tf.Tensor, delta: tf.Tensor, threat: ThreatModel) -> tf.Tensor:
    """`delta` projected onto the threat's ball and the box (see `projected_step`)."""
    return balls.get(threat.norm).project_with_box(x, delta, threat)
