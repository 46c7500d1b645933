"""Seeds and random draws of the attacks: stateless, so an attack is a deterministic
function of its seed (and a resumed run draws the same numbers)."""

import tensorflow as tf

from msd_tf import norms, projections
from msd_tf.seeding import INIT_STREAM, K_STREAM
from msd_tf.threats import ThreatModel

__all__ = ["INIT_STREAM", "K_STREAM", "as_seed", "draw_k", "fold", "random_in_ball"]


def as_seed(seed) -> tf.Tensor:
    """An int, a scalar or a `[2]` tensor as a `[2]` int64 stateless-RNG seed."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def fold(seed: tf.Tensor, data) -> tf.Tensor:
    """A new `[2]` seed derived from `seed` and an integer."""
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))


def random_in_ball(x: tf.Tensor, threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """A point drawn uniformly from the threat's ball, then clipped to the box.

    l_inf: uniform coordinates; l_2: Gaussian direction; l_1: Laplace direction
    (uniform on the sphere for that norm), each scaled to radius eps * U^(1/n),
    which makes the point uniform in the ball's volume. Clipping to the box only
    shrinks coordinates, so the result stays in the ball.
    """
    s1, s2 = fold(seed, 1), fold(seed, 2)
    shape = tf.shape(x)
    if threat.norm == "linf":
        delta = tf.random.stateless_uniform(shape, s1, -threat.eps, threat.eps, x.dtype)
    else:
        if threat.norm == "l2":
            direction = tf.random.stateless_normal(shape, s1, dtype=x.dtype)
        else:
            u = tf.random.stateless_uniform(shape, s1, 1e-7, 1.0, x.dtype)
            sign = tf.sign(tf.random.stateless_uniform(shape, fold(s1, 3), -1.0, 1.0, x.dtype))
            direction = -tf.math.log(u) * sign
        direction /= tf.maximum(
            norms.expand_to_rank(norms.per_example_norm(direction, threat.norm), x), 1e-12)
        n = tf.cast(tf.reduce_prod(shape[1:]), x.dtype)
        radius = threat.eps * tf.random.stateless_uniform(
            shape[:1], s2, 0.0, 1.0, x.dtype) ** (1.0 / n)
        delta = direction * norms.expand_to_rank(radius, x)
    return projections.project_box(x, delta)


def draw_k(threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """The l_1 step's k for one iteration: uniform on the integers [k1, k2]."""
    k1, k2 = threat.k_range
    return tf.random.stateless_uniform([], fold(seed, K_STREAM), k1, k2 + 1, tf.int32)
