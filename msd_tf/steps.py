"""Steepest-ascent directions for the l_inf, l_2 and l_1 norms (PAPER_NOTES section 2).

`grad` is the gradient of the per-example loss with respect to the perturbation.
Each function returns the step `v` to add to `delta` (not the new delta). All are
pure TensorFlow, safe inside `tf.function`, XLA and replica context; a zero gradient
gives a zero step, never NaN.

References:
  Maini, Wong, Kolter, ICML 2020, arXiv:1909.04068, section 3 and appendix A.
"""

import tensorflow as tf

from msd_tf import shapes

_TINY = 1e-12


def steepest_step_linf(grad: tf.Tensor, *, alpha) -> tf.Tensor:
    """`alpha * sign(grad)`: gains exactly `alpha * ||grad||_1` to first order."""
    grad = tf.convert_to_tensor(grad)
    return shapes.expand_to_rank(alpha, grad) * tf.sign(grad)


def steepest_step_l2(grad: tf.Tensor, *, alpha) -> tf.Tensor:
    """`alpha * grad / ||grad||_2` per example (zero where the gradient is zero)."""
    grad = tf.convert_to_tensor(grad)
    norm = shapes.expand_to_rank(shapes.l2_norms(grad), grad)
    return shapes.expand_to_rank(alpha, grad) * grad / tf.maximum(norm, _TINY)


def l1_allowed(grad: tf.Tensor, x_adv: tf.Tensor, *, gap: float = 0.05,
               lo: float = 0.0, hi: float = 1.0) -> tf.Tensor:
    """Which coordinates the l_1 step may move (appendix A.2 restriction).

    A coordinate is excluded when its move would push a pixel already within
    `gap` of a box face further out (`grad < 0` and `x_adv <= lo + gap`, or
    `grad > 0` and `x_adv >= hi - gap`), and, as in the reference code, whenever
    the pixel sits on a face (`x_adv <= lo` or `x_adv >= hi`), whatever the sign.

    Returns:
      A boolean tensor shaped like `grad`.
    """
    blocked = (
        ((grad < 0) & (x_adv <= lo + gap))
        | ((grad > 0) & (x_adv >= hi - gap))
        | (x_adv <= lo)
        | (x_adv >= hi)
    )
    return tf.logical_not(blocked)


def steepest_step_l1(grad: tf.Tensor, x_adv: tf.Tensor, *, alpha, k,
                     k_max: int | None = None, gap: float = 0.05,
                     lo: float = 0.0, hi: float = 1.0) -> tf.Tensor:
    """Enhanced top-k l_1 step (appendix A.1 with the A.2 restriction).

    Among the coordinates `l1_allowed` permits, the `k` largest |grad_i| each move
    by `alpha / k` in the direction `sign(grad_i)`, so the step has l_1 norm at most
    `alpha`. Exactly `k` coordinates are chosen even under ties (lowest index first);
    a coordinate with zero (or forbidden) gradient never moves, so fewer than `k`
    move when fewer are usable.

    Args:
      grad: `[B, ...]` gradient.
      x_adv: `[B, ...]` current adversarial input `x + delta`.
      alpha: l_1 length of the step (float or `[B]`).
      k: number of coordinates, a Python int or an int32 scalar tensor (e.g. drawn
        at random per iteration), 1 <= k <= k_max.
      k_max: static upper bound on `k` (defaults to `k` when `k` is a Python int);
        keeping it static makes the step XLA-compatible.
      gap, lo, hi: see `l1_allowed`.

    Returns:
      The step, shaped like `grad`.
    """
    if k_max is None:
        if not isinstance(k, int):
            raise ValueError("Argument `k_max` is required when `k` is a tensor.")
        k_max = k
    grad = tf.convert_to_tensor(grad)
    shape = tf.shape(grad)
    flat = shapes.flatten(grad)
    allowed = shapes.flatten(l1_allowed(grad, x_adv, gap=gap, lo=lo, hi=hi))
    masked = tf.where(allowed, flat, tf.zeros_like(flat))
    k_max = min(int(k_max), int(flat.shape[1])) if flat.shape[1] else int(k_max)
    _, idx = tf.math.top_k(tf.abs(masked), k=k_max)
    k = tf.cast(k, tf.int32)
    chosen = tf.cast(tf.range(k_max) < k, flat.dtype)  # first k of the k_max
    batch = tf.shape(flat)[0]
    rows = tf.repeat(tf.range(batch), k_max)
    indices = tf.stack([rows, tf.reshape(idx, [-1])], axis=1)
    weights = tf.reshape(tf.tile(chosen[None], [batch, 1]), [-1])
    mask = tf.scatter_nd(indices, weights, tf.shape(flat))
    per_coord = shapes.expand_to_rank(alpha, flat) / tf.cast(k, flat.dtype)
    step = per_coord * mask * tf.sign(masked)
    return tf.reshape(step, shape)
