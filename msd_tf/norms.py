"""Per-example norms and shape helpers for batch-first tensors.

All functions are pure, safe inside `tf.function`, XLA and replica context.
"""

import tensorflow as tf

from msd_tf.threats import NORMS, Norm, check_norm

__all__ = ["NORMS", "Norm", "check_norm", "expand_to_rank", "flatten", "per_example_norm"]


def flatten(t: tf.Tensor) -> tf.Tensor:
    """Reshapes `[B, ...]` to `[B, n]`."""
    return tf.reshape(t, [tf.shape(t)[0], -1])


def expand_to_rank(v, like: tf.Tensor) -> tf.Tensor:
    """Broadcasts a scalar or per-example vector `[B]` against `like` (`[B, ...]`).

    Args:
      v: a Python float, a scalar tensor or a `[B]` tensor.
      like: the tensor to broadcast against.

    Returns:
      `v` cast to `like.dtype`, reshaped to `[B, 1, ..., 1]` (or a scalar).
    """
    v = tf.cast(tf.convert_to_tensor(v), like.dtype)
    if v.shape.rank == 0:
        return v
    rank = like.shape.rank
    return tf.reshape(v, tf.concat([tf.shape(v), tf.ones([rank - 1], tf.int32)], 0))


def per_example_norm(t: tf.Tensor, norm: Norm) -> tf.Tensor:
    """The l_inf, l_2 or l_1 norm of every example of `t` (`[B, ...]` -> `[B]`)."""
    check_norm(norm)
    flat = flatten(t)
    if norm == "linf":
        return tf.reduce_max(tf.abs(flat), axis=1)
    if norm == "l2":
        return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1))
    return tf.reduce_sum(tf.abs(flat), axis=1)
