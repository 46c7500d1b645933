"""Soundness checks on attack results, and sanity warnings about a model.

Every adversarial example is re-checked before it counts: a fresh forward pass must
misclassify it, it must lie in [0, 1], and its l_p norm must not exceed the radius
(relative tolerance `RTOL`). Results that fail are rejected and counted.
"""

import numpy as np

RTOL = 1e-4  # relative tolerance on the radius
BOX_TOL = 1e-6  # absolute tolerance on the [0, 1] box


def lp_norms(x_adv: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    """Per-example l_p norm of `x_adv - x` in float64 (`[N]`)."""
    d = (np.asarray(x_adv, np.float64) - np.asarray(x, np.float64)).reshape(len(x), -1)
    if d.shape[1] == 0 or len(d) == 0:
        return np.zeros(len(d))
    if norm == "linf":
        return np.abs(d).max(axis=1)
    if norm == "l2":
        return np.sqrt((d * d).sum(axis=1))
    if norm == "l1":
        return np.abs(d).sum(axis=1)
    raise ValueError(f"lp_norms: unknown norm {norm!r}; known: linf, l2, l1.")


def predict(logits_fn, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted classes of `x`, in batches."""
    out = [np.asarray(logits_fn(x[i:i + batch_size])).argmax(1)
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros(0, int)


def verify(logits_fn, x, y, x_adv, found, *, norm: str):
    """Checks claimed adversarial examples.

    Args:
      logits_fn: images -> logits.
      x, y: clean images and labels.
      x_adv: candidate adversarial images (anything where `found` is False is ignored).
      found: `[N]` bool, where the attack claims an adversarial example.
      norm: the threat model's norm (the radius is applied later: `broken_at`).

    Returns:
      `(sound, norms, rejected)`: `sound[N]` = found, misclassified by a fresh
      forward pass and inside the box (any norm); `norms[N]` = l_p norm of sound
      examples (inf elsewhere); `rejected[N]` = claimed but not sound. An example
      is broken at radius r when `sound & (norms <= r * (1 + RTOL))`.
    """
    found = np.asarray(found, bool)
    x_adv = np.asarray(x_adv, np.float32)
    n = lp_norms(x_adv, x, norm)
    flat = x_adv.reshape(len(x_adv), -1)
    in_box = ((flat >= -BOX_TOL) & (flat <= 1 + BOX_TOL)).all(axis=1) if flat.size else \
        np.ones(len(x_adv), bool)
    misclassified = np.zeros(len(x), bool)
    if found.any():
        misclassified[found] = predict(logits_fn, x_adv[found]) != np.asarray(y)[found]
    sound = found & misclassified & in_box & np.isfinite(n)
    return sound, np.where(sound, n, np.inf), found & ~sound


def within(norms, eps: float):
    """The one rule for "inside the radius": `norms <= eps * (1 + RTOL)` (arrays or
    scalars). Every count of broken examples, curve and plot title goes through it."""
    return norms <= eps * (1 + RTOL)


def broken_at(sound: np.ndarray, norms: np.ndarray, eps: float) -> np.ndarray:
    """Examples with a sound adversarial example of norm <= eps (`within`)."""
    return sound & within(norms, eps)


def sanity_warnings(logits_fn, x: np.ndarray, y: np.ndarray) -> list[str]:
    """Warnings, each with its meaning, about outputs that make an evaluation untrustworthy.

    - outputs look like probabilities: rows are non-negative and sum to 1. Attacks
      built on logits (cross-entropy on softmax of probabilities) get flat gradients;
      export logits instead.
    - zero input gradients on correctly classified examples: gradient masking; the
      gradient attacks will fail for reasons unrelated to robustness.
    - predictions not deterministic: two forward passes disagree (dropout or
      training-mode BatchNorm left on?); attack results cannot be checked.
    """
    import tensorflow as tf

    warnings = []
    x = np.asarray(x[:64], np.float32)
    y = np.asarray(y[:64])
    logits = np.asarray(logits_fn(x))
    if np.all(logits >= 0) and np.allclose(logits.sum(1), 1.0, atol=1e-3):
        warnings.append("outputs look like probabilities (non-negative rows summing to 1); "
                        "the attacks expect logits")
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.constant(y, tf.int32), logits=tf.cast(logits_fn(xt), tf.float32))
    grad = tape.gradient(loss, xt)
    grad = np.zeros_like(x) if grad is None else np.asarray(grad)  # None: disconnected
    grad = grad.reshape(len(x), -1)
    correct = logits.argmax(1) == y
    if correct.any() and np.mean(np.abs(grad[correct]).max(1) == 0) > 0.5:
        warnings.append("input gradients are exactly zero on most correctly classified "
                        "examples (gradient masking?); gradient attacks may be unreliable")
    if not np.array_equal(np.asarray(logits_fn(x)).argmax(1), logits.argmax(1)):
        warnings.append("predictions are not deterministic (two forward passes disagree)")
    return warnings
