"""Shared pieces of every attack: logits, per-example loss, seeds, random starts,
one projected steepest-ascent step, and the compiled-function cache.

Graph-level functions (`*_delta`) are plain TensorFlow and run inside any
`tf.function` (the Keras `train_step` calls them); the public wrappers in
`pgd.py`, `msd.py` and `worst_case.py` compile them once per model and shape.
"""

import dataclasses
import weakref
from typing import Callable

import keras
import tensorflow as tf

from msd_tf import norms, projections, steps
from msd_tf.threats import ThreatModel

# fold_in stream tags, so that random starts, k draws and restarts never share
# random numbers.
INIT_STREAM = 1_000_003
K_STREAM = 2_000_003


@dataclasses.dataclass
class AttackOutput:
    """What a graph-level attack returns.

    Attributes:
      delta: `[B, ...]` perturbation, inside the ball and with `x + delta` in [0, 1].
      loss: `[B]` per-example loss at `x + delta`.
      choice: `[B]` int32 index of the threat model the example's delta came from
        (MSD, MAX), or zeros for single-norm PGD.
      counts: `[len(threats)]` float32, how often each threat model's candidate was
        chosen (MSD: over iterations and examples; MAX: over examples).
    """

    delta: tf.Tensor
    loss: tf.Tensor
    choice: tf.Tensor
    counts: tf.Tensor


def cross_entropy(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy `[B]` from logits and int labels."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32))


def logits_of(model: Callable, x: tf.Tensor, training: bool) -> tf.Tensor:
    """Calls `model` on `x`; Keras layers get `training=`, other callables just `x`."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=training)
    return model(x)


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


def projected_step(x: tf.Tensor, delta: tf.Tensor, grad: tf.Tensor,
                   threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """One steepest-ascent step of `threat.norm`, projected back onto ball and box.

    Order (PAPER_NOTES section 3): clip `x + delta` to the box, then project onto
    the l_p ball; for l_2 and l_1 the ball projection shrinks delta toward 0, so the
    result lies in both sets. With `threat.l1_projection == "exact"` the l_1
    candidate uses `project_l1_box`, the exact projection onto the intersection.

    Args:
      x: clean inputs; delta: current perturbation; grad: loss gradient at delta.
      seed: `[2]` seed for this iteration (used by the l_1 step's random k).
    """
    if threat.norm == "linf":
        v = steps.steepest_step_linf(grad, alpha=threat.alpha)
    elif threat.norm == "l2":
        v = steps.steepest_step_l2(grad, alpha=threat.alpha)
    else:
        v = steps.steepest_step_l1(
            grad, x + delta, alpha=threat.alpha, k=draw_k(threat, seed),
            k_max=threat.k_range[1], gap=threat.l1_gap)
    return project_onto(x, delta + v, threat)


def project_onto(x: tf.Tensor, delta: tf.Tensor, threat: ThreatModel) -> tf.Tensor:
    """`delta` projected onto the threat's ball and the box (see `projected_step`)."""
    if threat.norm == "l1" and threat.l1_projection == "exact":
        return projections.project_l1_box(x, delta, threat.eps)
    boxed = projections.project_box(x, delta)
    return projections.project(boxed, threat.norm, threat.eps)


def loss_and_grad(model, x, delta, y, *, training: bool, loss_fn):
    """Per-example loss, logits and d(sum of losses)/d(delta) at `x + delta`."""
    with tf.GradientTape() as tape:
        tape.watch(delta)
        logits = logits_of(model, x + delta, training)
        loss = loss_fn(logits, y)
    return loss, logits, tape.gradient(loss, delta)


def broadcast_mask(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A `[B]` boolean mask broadcast to the shape of `like` (`[B, ...]`)."""
    shape = tf.concat([tf.shape(mask), tf.ones([like.shape.rank - 1], tf.int32)], 0)
    return tf.broadcast_to(tf.reshape(mask, shape), tf.shape(like))


def adversarial_images(x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """`x + delta`, clipped to [0, 1] against float rounding (delta is box-feasible)."""
    return tf.clip_by_value(x + delta, 0.0, 1.0)


def better(loss_new, fooled_new, loss_old, fooled_old):
    """Restart rule: fooling beats not fooling; otherwise the higher loss wins."""
    return (fooled_new & ~fooled_old) | ((fooled_new == fooled_old) & (loss_new > loss_old))


def best_of_runs(one_run, restarts: int, x: tf.Tensor, y: tf.Tensor, model, training: bool,
                 loss_fn):
    """Runs `one_run(r) -> delta` for r < restarts in a `tf.while_loop` and keeps, per
    example, the better delta (`better`: fooling first, then the higher loss).

    Returns:
      `(delta, loss)` of the kept runs.
    """
    batch = tf.shape(x)[0]
    y_int = tf.cast(y, tf.int32)

    def restart(r, best_delta, best_loss, best_fooled):
        delta = one_run(r)
        logits = logits_of(model, x + delta, training)
        loss = loss_fn(logits, y)
        fooled = tf.argmax(logits, axis=1, output_type=tf.int32) != y_int
        take = better(loss, fooled, best_loss, best_fooled)
        return (r + 1, tf.where(broadcast_mask(take, x), delta, best_delta),
                tf.where(take, loss, best_loss), tf.where(take, fooled, best_fooled))

    init = (tf.constant(0), tf.zeros_like(x),
            tf.fill([batch], tf.constant(-float("inf"), tf.float32)), tf.zeros([batch], tf.bool))
    _, delta, loss, _ = tf.while_loop(lambda r, *_: r < restarts, restart, init)
    return delta, loss


# ---------------------------------------------------------------------------
# Compiled-function cache: one tf.function per (model, attack settings, input
# spec), so that repeated calls neither retrace nor rebuild the graph.
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled(model, key, make_fn: Callable, x: tf.Tensor, y: tf.Tensor,
             *, jit_compile: bool):
    """Returns a cached `tf.function(make_fn())` taking (x, y, seed).

    The input signature has a `None` batch dimension, so batches of any size use
    one trace.
    """
    spec = (tuple(x.shape[1:]), x.dtype.name, y.dtype.name)
    full_key = (key, spec, jit_compile)
    try:
        per_model = _CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: compile without caching
        per_model = {}
    if full_key not in per_model:
        signature = [
            tf.TensorSpec([None, *x.shape[1:]], x.dtype),
            tf.TensorSpec([None], y.dtype),
            tf.TensorSpec([2], tf.int64),
        ]
        per_model[full_key] = tf.function(
            make_fn(), input_signature=signature, jit_compile=jit_compile,
            reduce_retracing=True)
    return per_model[full_key]


def check_inputs(x, y):
    """Converts inputs to tensors and checks their shapes and range."""
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    y = tf.convert_to_tensor(y)
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"Argument `x` must be batch-first with rank >= 2. Received shape {x.shape}")
    if y.shape.rank != 1 or (x.shape[0] is not None and y.shape[0] != x.shape[0]):
        raise ValueError(
            f"Argument `y` must be int labels of shape [{x.shape[0]}]. Received shape {y.shape}")
    if tf.executing_eagerly() and tf.size(x) > 0:
        lo, hi = float(tf.reduce_min(x)), float(tf.reduce_max(x))
        if lo < 0 or hi > 1:
            raise ValueError(
                f"Argument `x` must lie in [0, 1]. Received values in [{lo:.4g}, {hi:.4g}]")
    return x, y
