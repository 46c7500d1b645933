"""SLIDE, sparse l_1 descent (Tramer and Boneh 2019), in the l_1 ball.

Each iteration, at the adversarial input `x_adv = clip(x + delta, 0, 1)`:

1. `g` is the gradient of the loss (by default theirs, the margin loss
   -(z_y - max_{j != y} z_j)); a coordinate on a box face whose gradient points out
   of the box (`x_adv_i = 1` and `g_i > 0`, or `x_adv_i = 0` and `g_i < 0`) gets
   `g_i = 0`;
2. `thr` is the per-example q-th percentile of |g| over all coordinates, the zeroed
   ones included (NumPy's `np.percentile`: linear interpolation between the two
   nearest ranks; q = 99 by default);
3. `e = sign(g) * 1[|g| >= thr] / #{i : |g_i| >= thr}`: every coordinate at or above
   the percentile, ties included, moves by the same share, so `||e||_1 = 1` (less
   only when `thr = 0`: zero-gradient coordinates then take shares they do not move);
4. `delta <- delta + a * e` (`a = threat.alpha`), projected onto the l_1 ball of
   radius `threat.eps` (Duchi et al. 2008), THEN clipped to the box.

The order of step 4 is Tramer and Boneh's: project, then clip. It is the reverse of
the order every other attack here uses (Maini et al.'s, PAPER_NOTES section 3: clip to
the box, then project onto the ball). Clipping only moves coordinates toward 0, so the
result lies in the ball and the box; it is not the exact projection onto their
intersection either.

A run's random start (every run when `threat.random_start`, else every run after the
first, as `pgd`): Laplace noise rescaled to `||delta||_1 = eps`, then clipped to the
box (`random_start`). Tramer and Boneh clip only the images and keep the unclipped
start until their first update; the images attacked are the same.

As `pgd`, an example the model already misclassifies stops moving
(`stop_when_fooled`; theirs runs every iteration and keeps the last iterate, which
can only fool fewer examples), and across runs an example keeps the better delta
(fooling first, then the higher loss).

References:
  Tramer, Boneh, "Adversarial training and robustness for multiple perturbations",
  NeurIPS 2019, arXiv:1904.13000, section 5.1 (code: ftramer/MultiRobustness,
  `pgd_attack.py`, `delta_update` for "l1"); Duchi, Shalev-Shwartz, Singer, Chandra,
  ICML 2008 (the l_1-ball projection).
"""

import math

import tensorflow as tf

from msd_tf import balls, projections, shapes
from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import margin_loss
from msd_tf.threats import ThreatModel

PERCENTILE = 99.0  # Tramer and Boneh's q for MNIST and CIFAR-10
_TINY = 1e-12


def percentile(values: tf.Tensor, q: float) -> tf.Tensor:
    """The q-th percentile of every row of `values` (`[B, n]`, static n) -> `[B]`.

    As `np.percentile(values, q, axis=1)` with its default linear interpolation: at
    position p = q / 100 * (n - 1) of the sorted row, between ranks floor(p) and
    floor(p) + 1, interpolated from the nearer one (NumPy's `_lerp`), so that equal
    neighbours give exactly their value. Only the n - floor(p) largest values are
    sorted (`tf.math.top_k`). The result never exceeds the value at the upper rank,
    so at least one value of every row is >= it. Safe inside `tf.function` and XLA.
    """
    n = values.shape[1]
    if n is None:
        raise ValueError("`percentile` needs a static number of columns. Received shape "
                         f"{values.shape}")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"Argument `q` must be in [0, 100]. Received: q={q!r}")
    quantile = q / 100.0
    pos = n * quantile + (1.0 - quantile) - 1.0  # NumPy's float arithmetic for q/100 * (n-1)
    lo = min(max(int(math.floor(pos)), 0), n - 1)
    hi = min(lo + 1, n - 1)
    t = min(max(pos - lo, 0.0), 1.0)
    top = tf.math.top_k(values, k=n - lo, sorted=True).values  # top[:, j]: rank n-1-j
    below, above = top[:, n - 1 - lo], top[:, n - 1 - hi]
    diff = above - below
    thr = above - diff * (1.0 - t) if t >= 0.5 else below + diff * t
    return tf.clip_by_value(thr, below, above)


def slide_direction(grad: tf.Tensor, x_adv: tf.Tensor, *, q: float = PERCENTILE,
                    lo: float = 0.0, hi: float = 1.0) -> tf.Tensor:
    """SLIDE's direction `e` (steps 1-3 of the module docstring), shaped like `grad`.

    Args:
      grad: `[B, ...]` loss gradient at `x_adv`.
      x_adv: `[B, ...]` the current adversarial input, in [lo, hi].
      q: the percentile of |g| at or above which coordinates move.
      lo, hi: the box.

    Returns:
      `e` with `||e_b||_1 = 1` wherever the threshold is > 0 (a zero gradient gives
      `e = 0`, never NaN).
    """
    x_adv = tf.convert_to_tensor(x_adv)
    # A gathered-and-scattered gradient (`base.loss_and_grad_where`) has lost its static
    # shape; the percentile needs the number of coordinates.
    grad = tf.ensure_shape(tf.convert_to_tensor(grad), x_adv.shape)
    outward = ((x_adv >= hi) & (grad > 0)) | ((x_adv <= lo) & (grad < 0))
    grad = tf.where(outward, tf.zeros_like(grad), grad)
    n = grad.shape[1:].num_elements()  # static, so that `shapes.flatten` is not used
    flat = tf.reshape(grad, [-1, n]) if n is not None else shapes.flatten(grad)
    magnitude = tf.abs(flat)
    chosen = tf.cast(magnitude >= percentile(magnitude, q)[:, None], flat.dtype)
    count = tf.reduce_sum(chosen, axis=1, keepdims=True)  # >= 1 (see `percentile`)
    return tf.reshape(tf.sign(flat) * chosen / count, tf.shape(grad))


def slide_update(x: tf.Tensor, delta: tf.Tensor, grad: tf.Tensor, *, eps, step_size,
                 q: float = PERCENTILE) -> tf.Tensor:
    """One SLIDE iteration: the new delta, `clip_box(project_l1(delta + a * e))`.

    Projects onto the l_1 ball of radius `eps`, then clips `x + delta` to [0, 1]
    (Tramer and Boneh's order; the result lies in both sets).

    Args:
      x: `[B, ...]` clean images; delta: current perturbation (`x + delta` in [0, 1]);
      grad: the loss gradient at `x + delta`.
      eps: l_1 radius; step_size: `a`, the l_1 length of the step (floats or `[B]`).
      q: see `slide_direction`.
    """
    x = tf.convert_to_tensor(x)
    delta = tf.ensure_shape(delta, x.shape)  # loop variables may have lost static shapes
    e = slide_direction(grad, base.adversarial_images(x, delta), q=q)
    moved = delta + shapes.expand_to_rank(step_size, delta) * e
    return projections.project_box(x, balls.get("l1").project(moved, eps))


def random_start(x: tf.Tensor, eps, seed: tf.Tensor) -> tf.Tensor:
    """Laplace noise rescaled to `||delta||_1 = eps` per example (on the sphere), then
    clipped so that `x + delta` lies in [0, 1] (which keeps it in the ball).

    Args:
      x: `[B, ...]` images in [0, 1]; eps: radius; seed: `[2]` stateless seed.
    """
    l1 = balls.get("l1")
    noise = tf.ensure_shape(l1.direction(tf.shape(x), seed, x.dtype), x.shape)
    norm = shapes.expand_to_rank(l1.norm(noise), x)
    scale = shapes.expand_to_rank(eps, x) / tf.maximum(norm, _TINY)
    return projections.project_box(x, noise * scale)


def slide_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor,
                *, training: bool = False, loss_fn=margin_loss, q: float = PERCENTILE,
                stop_when_fooled: bool = True, compact: bool = False) -> base.AttackOutput:
    """Graph-level SLIDE: `threat.restarts` runs of `threat.steps` iterations of step
    `threat.alpha` in the l_1 ball of radius `threat.eps` (see the module docstring).

    Args:
      model: a Keras model or callable mapping images in [0, 1] to logits.
      x: `[B, ...]` images in [0, 1]; y: `[B]` int labels.
      threat: an l_1 `ThreatModel` (its `l1`, the paper's l_1 step, is not used).
      seed: `[2]` int64 stateless seed (see `as_seed`).
      training: passed to the model.
      loss_fn: per-example loss `(logits, y) -> [B]` to ascend (default: the margin
        loss, Tramer and Boneh's).
      q: the percentile of |g| (Tramer and Boneh: 99).
      stop_when_fooled: freeze examples that are already misclassified.
      compact: with `stop_when_fooled`, compute only the examples still correctly
        classified (as `pgd_delta`; not under XLA or with training=True).

    Returns:
      `base.AttackOutput`; `loss` is the loss at the returned delta.

    Raises:
      ValueError: `threat.norm` is not "l1".
    """
    if threat.norm != "l1":
        raise ValueError(f"SLIDE attacks the l1 ball only. Received: threat.norm="
                         f"{threat.norm!r}")
    return base.ascend(
        model, x, y, threat, seed,
        lambda t, delta, grad, state, run_seed: (
            slide_update(x, delta, grad, eps=threat.eps, step_size=threat.alpha, q=q), state),
        start=lambda start_seed: random_start(x, threat.eps, start_seed), training=training,
        loss_fn=loss_fn, stop_when_fooled=stop_when_fooled, compact=compact)


def slide(model, x, y, threat: ThreatModel, *, seed=0, training: bool = False,
          jit_compile: bool = False, loss_fn=margin_loss, q: float = PERCENTILE) -> tf.Tensor:
    """SLIDE in the l_1 ball; returns adversarial images `x + delta`.

    Compiled once per model, threat, options and input shape (`tf.function`,
    optionally XLA); deterministic for a given `seed`.

    Args:
      model: Keras model or callable, images in [0, 1] -> logits.
      x: `[B, ...]` float images in [0, 1]; y: `[B]` int labels.
      threat: an l_1 `ThreatModel` (eps, alpha = the step a, steps, restarts,
        random_start).
      seed: int or `[2]` int tensor.
      training, loss_fn, q: see `slide_delta`.
      jit_compile: compile with XLA.

    Returns:
      `[B, ...]` adversarial images in [0, 1] with `||x_adv - x||_1 <= eps`.

    Example:
      >>> threat = ThreatModel("l1", eps=10.0, alpha=0.5, steps=100, random_start=True)
      >>> x_adv = slide(model, x, y, threat, seed=0)  # Tramer and Boneh's MNIST setting
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"Argument `q` must be in [0, 100]. Received: q={q!r}")
    return compiled.run(model, x, y, slide_delta, threat, seed=seed, jit_compile=jit_compile,
                        training=training, loss_fn=loss_fn, q=float(q),
                        compact=not (jit_compile or training))
