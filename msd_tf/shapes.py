"""Shape helpers for batch-first tensors, below every per-norm module (projections,
steps, balls): pure TensorFlow, safe inside `tf.function`, XLA and replica context."""

import tensorflow as tf


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


def l2_norms(t: tf.Tensor) -> tf.Tensor:
    """Per-example l_2 norm `[B]` (the projections' and steps' own, below `balls`)."""
    return tf.sqrt(tf.reduce_sum(tf.square(flatten(t)), axis=1))
