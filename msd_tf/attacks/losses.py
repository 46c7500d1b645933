"""The per-example losses the attacks and the trainer share (`[B]`, from logits and int
labels): cross-entropy, the margin (and its negation, a loss to ascend), and the DLR
losses of APGD (Croce and Hein 2020). `LOSSES` names the ones APGD ascends."""

import numpy as np
import tensorflow as tf


def cross_entropy(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy `[B]` from logits and int labels."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y, tf.int32), logits=tf.cast(logits, tf.float32))


def margin(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """z_y - max_{j != y} z_j per example (`[B]`); <= 0 means misclassified."""
    logits = tf.cast(logits, tf.float32)
    y = tf.cast(y, tf.int32)
    z_y = tf.gather(logits, y, axis=1, batch_dims=1)
    others = tf.where(tf.one_hot(y, tf.shape(logits)[1]) > 0, -np.inf, logits)
    return z_y - tf.reduce_max(others, axis=1)


def margin_loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The margin as a loss to ascend: -(z_y - max_{j != y} z_j) per example (`[B]`);
    > 0 means misclassified. Tramer and Boneh's PGD and SLIDE loss (their
    `compute_grad`; Carlini and Wagner's f_6 at confidence 0)."""
    return -margin(logits, y)


def dlr(logits: tf.Tensor, y: tf.Tensor, target: tf.Tensor | None = None) -> tf.Tensor:
    """Per-example difference-of-logits-ratio loss (to be maximized).

    Untargeted: -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12).
    Targeted:   -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12).
    z_pi1 >= z_pi2 >= ... are the sorted logits (at least 4 classes for targeted).
    """
    logits = tf.cast(logits, tf.float32)
    y = tf.cast(y, tf.int32)
    z_sorted = tf.sort(logits, axis=1, direction="DESCENDING")
    if target is None:
        return -margin(logits, y) / (z_sorted[:, 0] - z_sorted[:, 2] + 1e-12)
    z_y = tf.gather(logits, y, axis=1, batch_dims=1)
    z_t = tf.gather(logits, tf.cast(target, tf.int32), axis=1, batch_dims=1)
    denom = z_sorted[:, 0] - 0.5 * (z_sorted[:, 2] + z_sorted[:, 3]) + 1e-12
    return -(z_y - z_t) / denom


# The losses APGD ascends: name -> (logits, y, target) -> [B]. "dlr_targeted" needs
# the target classes; the others ignore them.
LOSSES = {
    "ce": lambda logits, y, target=None: cross_entropy(logits, y),
    "dlr": lambda logits, y, target=None: dlr(logits, y),
    "dlr_targeted": lambda logits, y, target=None: dlr(logits, y, target),
}


def check_loss(loss: str) -> str:
    """Returns `loss` if it names one of `LOSSES`, else raises a ValueError listing them."""
    if loss not in LOSSES:
        raise ValueError(f"Argument `loss` must be one of {sorted(LOSSES)}. Received: {loss!r}")
    return loss
