"""Stateless seeds: an attack or a ball draws from `fold(seed, tag)` so that it is a
deterministic function of its seed (a resumed run draws the same numbers). The tags
are in `msd_tf/seeding.py`."""

import tensorflow as tf


def as_seed(seed) -> tf.Tensor:
    """An int, a scalar or a `[2]` tensor as a `[2]` int64 stateless-RNG seed."""
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
    return seed


def fold(seed: tf.Tensor, data) -> tf.Tensor:
    """A new `[2]` seed derived from `seed` and an integer."""
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))
