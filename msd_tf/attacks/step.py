"""One projected steepest-ascent step of a threat model (PAPER_NOTES sections 2-3)."""

import tensorflow as tf

from msd_tf import projections, steps
from msd_tf.attacks.randomness import draw_k
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
    if threat.norm == "linf":
        v = steps.steepest_step_linf(grad, alpha=threat.alpha)
    elif threat.norm == "l2":
        v = steps.steepest_step_l2(grad, alpha=threat.alpha)
    else:
        v = steps.steepest_step_l1(
            grad, x + delta, alpha=threat.alpha, k=draw_k(threat, seed),
            k_max=threat.k_range[1], gap=threat.l1_gap)
    return project_onto(x, delta + v, threat)


def project_onto(x: tf.Tensor, delta: tf.Tensor, threat: ThreatModel) -> tf.Tensor:
    """`delta` projected onto the threat's ball and the box (see `projected_step`)."""
    if threat.norm == "l1" and threat.l1_projection == "exact":
        return projections.project_l1_box(x, delta, threat.eps)
    boxed = projections.project_box(x, delta)
    return projections.project(boxed, threat.norm, threat.eps)
