"""Per-example norms and shape helpers for batch-first tensors.

`per_example_norm` dispatches to the norm's `Ball` (`msd_tf.balls`); `flatten` and
`expand_to_rank` are `msd_tf.shapes`'. All are pure, safe inside `tf.function`, XLA
and replica context.
"""

import tensorflow as tf

from msd_tf import balls
from msd_tf.shapes import expand_to_rank, flatten
from msd_tf.threats import NORMS, Norm, check_norm

__all__ = ["NORMS", "Norm", "check_norm", "expand_to_rank", "flatten", "per_example_norm"]


def per_example_norm(t: tf.Tensor, norm: Norm) -> tf.Tensor:
    """The `norm` (l_inf, l_2, l_1) of every example of `t` (`[B, ...]` -> `[B]`)."""
    return balls.get(norm).norm(t)
