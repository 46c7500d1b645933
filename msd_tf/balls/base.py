"""`Ball`: what one l_p norm means to the attacks, in one class (see `msd_tf.balls`)."""

import tensorflow as tf

from msd_tf import projections, shapes
from msd_tf.seeding import fold
from msd_tf.threats import ThreatModel


class Ball:
    """One norm's geometry. Subclasses set `name` and implement `norm`,
    `steepest_step`, `project` and (for the default `random_start`) `direction`.

    Every method is pure TensorFlow on batch-first tensors, safe inside `tf.function`,
    XLA and replica context; `eps` may be a float, a scalar or a per-example `[B]`.
    """

    name: str = ""

    def norm(self, t: tf.Tensor) -> tf.Tensor:
        """Per-example norm, `[B, ...]` -> `[B]`."""
        raise NotImplementedError

    def steepest_step(self, grad: tf.Tensor, x_adv: tf.Tensor, threat: ThreatModel,
                      seed: tf.Tensor) -> tf.Tensor:
        """The step `v` (to add to delta) of steepest ascent of length `threat.alpha`
        in this norm, at the adversarial input `x_adv`; `seed` for any random draw."""
        raise NotImplementedError

    def unit_step(self, grad: tf.Tensor) -> tf.Tensor:
        """The steepest-ascent direction of unit length (APGD's, for l_inf and l_2)."""
        raise ValueError(f"{self.name} has no dense unit step; its APGD is its own "
                         "algorithm (attacks/apgd_l1.py).")

    def project(self, delta: tf.Tensor, eps) -> tf.Tensor:
        """Euclidean projection of `delta` onto the ball of radius `eps`."""
        raise NotImplementedError

    def project_with_box(self, x: tf.Tensor, delta: tf.Tensor, threat: ThreatModel):
        """`delta` into the ball and with `x + delta` in [0, 1]: clip to the box, then
        project onto the ball (PAPER_NOTES section 3). Where the ball projection only
        shrinks toward 0, the result lies in both sets."""
        return self.project(projections.project_box(x, delta), threat.eps)

    def direction(self, shape, seed: tf.Tensor, dtype) -> tf.Tensor:
        """A random direction whose normalization is uniform on this norm's sphere."""
        raise NotImplementedError

    def random_start(self, x: tf.Tensor, threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
        """A point uniform in the ball's volume: a `direction` scaled to radius
        eps * U^(1/n) (U uniform), not yet clipped to the box."""
        shape = tf.shape(x)
        direction = self.direction(shape, fold(seed, 1), x.dtype)
        direction /= tf.maximum(shapes.expand_to_rank(self.norm(direction), x), 1e-12)
        n = tf.cast(tf.reduce_prod(shape[1:]), x.dtype)
        radius = threat.eps * tf.random.stateless_uniform(
            shape[:1], fold(seed, 2), 0.0, 1.0, x.dtype) ** (1.0 / n)
        return direction * shapes.expand_to_rank(radius, x)
