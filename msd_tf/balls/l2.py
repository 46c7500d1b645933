"""The l_2 ball: normalized-gradient steps, radial scaling, Gaussian directions."""

import tensorflow as tf

from msd_tf import projections, shapes, steps
from msd_tf.balls.base import Ball


class L2(Ball):
    name = "l2"

    def norm(self, t):
        return shapes.l2_norms(t)

    def steepest_step(self, grad, x_adv, threat, seed):
        return steps.steepest_step_l2(grad, alpha=threat.alpha)

    def unit_step(self, grad):
        return steps.steepest_step_l2(grad, alpha=1.0)

    def project(self, delta, eps):
        return projections.project_l2(delta, eps)

    def direction(self, shape, seed, dtype):
        return tf.random.stateless_normal(shape, seed, dtype=dtype)
