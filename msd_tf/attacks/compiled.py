"""The public face of every attack: input checks, one compiled function per (model,
attack settings, input spec), and `x + delta` clipped to the box."""

import weakref
from typing import Callable

import tensorflow as tf

from msd_tf.attacks.base import adversarial_images
from msd_tf.seeding import as_seed

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cached_function(model, key, delta_fn: Callable, x: tf.Tensor, y: tf.Tensor, *,
             jit_compile: bool):
    """A cached `tf.function(delta_fn)` taking (x, y, seed).

    The input signature has a `None` batch dimension, so batches of any size use one
    trace; the cache holds one function per model (weakly), `key` and input spec.
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
        per_model[full_key] = tf.function(delta_fn, input_signature=signature,
                                          jit_compile=jit_compile, reduce_retracing=True)
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


def function_for(model, attack_delta: Callable, settings, x, y, *, jit_compile: bool,
                 **options):
    """The cached compiled `(x, y, seed) -> delta` of `attack_delta(model, x, y, settings,
    seed, **options)`; the cache key is derived from `attack_delta`, `settings` and
    `options` (so no setting can be left out of it)."""
    key = (attack_delta, settings, tuple(sorted(options.items())))
    # The cache's value must not hold the model it is keyed by (a WeakKeyDictionary's
    # key would never die): the traced function reaches it through a weak reference.
    try:
        model_ref = weakref.ref(model)
    except TypeError:  # not weak-referenceable: not cached either (cached_function)
        model_ref = lambda: model  # noqa: E731

    def delta_fn(xx, yy, ss):
        return attack_delta(model_ref(), xx, yy, settings, ss, **options).delta

    return cached_function(model, key, delta_fn, x, y, jit_compile=jit_compile)


def run(model, x, y, attack_delta: Callable, settings, *, seed, jit_compile: bool,
        **options) -> tf.Tensor:
    """Adversarial images `x + attack_delta(model, x, y, settings, seed, **options).delta`
    (clipped to the box against float rounding), compiled once per `model`, attack,
    settings, options and input spec.

    Args:
      attack_delta: a graph-level `*_delta(model, x, y, settings, seed, **options)`
        returning an `AttackOutput`.
      settings: its threat model (or tuple of threat models).
      options: its keyword arguments (hashable).
    """
    x, y = check_inputs(x, y)
    fn = function_for(model, attack_delta, settings, x, y, jit_compile=jit_compile, **options)
    if x.shape[0] == 0:  # TF's fused ReluGrad rejects empty batches; nothing to do
        return x
    return adversarial_images(x, fn(x, y, as_seed(seed)))
