"""The l_inf ball: sign steps, coordinate clipping, uniform random starts."""

import tensorflow as tf

from msd_tf import projections, shapes, steps
from msd_tf.balls.base import Ball
from msd_tf.seeding import fold


class Linf(Ball):
    name = "linf"

    def norm(self, t):
        return tf.reduce_max(tf.abs(shapes.flatten(t)), axis=1)

    def steepest_step(self, grad, x_adv, threat, seed):
        return steps.steepest_step_linf(grad, alpha=threat.alpha)

    def unit_step(self, grad):
        return steps.steepest_step_linf(grad, alpha=1.0)

    def project(self, delta, eps):
        return projections.project_linf(delta, eps)

    def random_start(self, x, threat, seed):
        """Uniform coordinates in [-eps, eps] (uniform in the cube's volume)."""
        return tf.random.stateless_uniform(tf.shape(x), fold(seed, 1), -threat.eps,
                                           threat.eps, x.dtype)
