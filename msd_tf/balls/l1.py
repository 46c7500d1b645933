"""The l_1 ball: the paper's sparse top-k step (random k), the sorted-threshold
projection (or the exact ball-and-box one), Laplace directions."""

import tensorflow as tf

from msd_tf import projections, shapes, steps
from msd_tf.balls.base import Ball
from msd_tf.seeding import K_STREAM, fold
from msd_tf.threats import ThreatModel


def draw_k(threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """The l_1 step's k for one iteration: uniform on the integers [k1, k2]."""
    k1, k2 = threat.l1.k_range
    return tf.random.stateless_uniform([], fold(seed, K_STREAM), k1, k2 + 1, tf.int32)


class L1(Ball):
    name = "l1"

    def norm(self, t):
        return tf.reduce_sum(tf.abs(shapes.flatten(t)), axis=1)

    def steepest_step(self, grad, x_adv, threat, seed):
        return steps.steepest_step_l1(grad, x_adv, alpha=threat.alpha,
                                      k=draw_k(threat, seed), k_max=threat.l1.k_range[1],
                                      gap=threat.l1.gap)

    def project(self, delta, eps):
        return projections.project_l1(delta, eps)

    def project_with_box(self, x, delta, threat):
        """With `threat.l1.projection == "exact"`: the exact projection onto the
        intersection (`project_l1_box`); else clip, then project (the paper's order)."""
        if threat.l1.projection == "exact":
            return projections.project_l1_box(x, delta, threat.eps)
        return super().project_with_box(x, delta, threat)

    def direction(self, shape, seed, dtype):
        u = tf.random.stateless_uniform(shape, seed, 1e-7, 1.0, dtype)
        sign = tf.sign(tf.random.stateless_uniform(shape, fold(seed, 3), -1.0, 1.0, dtype))
        return -tf.math.log(u) * sign
