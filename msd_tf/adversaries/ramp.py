"""RAMP as a training adversary (Jiang and Singh, NeurIPS 2024): APGD in a source and a
target norm, train on the worse of the two plus lambda * KL(p(x_q) || p(x_r)) on the
examples x_q leaves correct (`kl_on_correct`); optionally their gradient projection at
epoch boundaries (`fuse`, run by the `_Projection` callback)."""

import keras
import tensorflow as tf

from msd_tf.adversaries.base import (
    Adversary,
    AdversaryOutput,
    TrainingStep,
    _per_norm,
    train_attack_delta,
)
from msd_tf.adversaries.catalog import OPTIONS
from msd_tf.attacks.base import adversarial_images, broadcast_mask
from msd_tf.seeding import fold


class RAMP(Adversary):
    """RAMP (Jiang and Singh, NeurIPS 2024): APGD in the source norm q and the target norm
    r (default l_inf and l_1; `pair`), each from delta = 0 for `steps` iterations of its
    threat, keeping its highest-loss point (their training APGD; l_1 without AutoAttack's
    radius schedule). The trainer's loss is the cross-entropy of whichever of x_q, x_r
    had the higher attack loss, per example (ties: x_r, as their `max` takes the first
    of (target, source)), plus `lam` * `kl_on_correct(p(x_q), p(x_r))` over the
    examples x_q leaves correctly classified (neither side detached). `lam`: 5 from
    scratch, 1.5 for fine-tuning in their scripts.

    `projection=beta` (their from-scratch option, beta = 0.5) adds their gradient
    projection: a natural copy of the model trains on the clean batches of each epoch
    (same optimizer settings, its own state), both starting from the epoch's weights
    theta_old; at the epoch's end every non-scalar weight tensor (batch-norm statistics
    included) becomes `fuse(theta_old, theta_adv, theta_nat, beta)`, the copy follows.
    The copy, its optimizer and theta_old are this layer's state, so the run's
    checkpoint holds them.
    """

    options = OPTIONS["ramp"]  # declared TensorFlow-free, for the flags
    term_name = "ramp_kl"

    def __init__(self, threats=(), *, lam: float = 5.0, pair=("linf", "l1"),
                 projection: float | None = None, **kwargs):
        super().__init__(threats, **kwargs)
        if projection is not None and not 0 <= projection <= 1:
            raise ValueError(f"RAMP's projection beta must be in [0, 1]; got {projection}.")
        self.beta = projection
        self.natural = self.natural_optimizer = self.anchor = None
        pair = tuple(pair)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"RAMP needs two different norms (source, target); got {pair}.")
        if lam < 0:
            raise ValueError(f"RAMP's lambda must be >= 0; got {lam}.")
        self.lam, self.pair = float(lam), pair
        self.source, self.target = (self.threat(n) for n in pair)  # raises if missing

    def _apgd(self, model, x, y, threat, seed):
        return train_attack_delta("apgd", model, x, y, threat.replace(random_start=False),
                                  seed, training=self.attack_training)

    def perturb(self, model, x, y, *, seed, shared_seed):
        q = self._apgd(model, x, y, self.source, fold(seed, 0))
        r = self._apgd(model, x, y, self.target, fold(seed, 1))
        x_q = adversarial_images(x, q.delta)
        x_r = adversarial_images(x, r.delta)
        take_q = q.loss > r.loss
        x_worse = tf.where(broadcast_mask(take_q, x), x_q, x_r)
        n_q = tf.reduce_sum(tf.cast(take_q, tf.float32))
        batch = tf.cast(tf.shape(x)[0], tf.float32)
        counts = _per_norm(tf.stack([n_q, batch - n_q]), (self.source, self.target))
        return AdversaryOutput(x_worse, y, counts, extra={"x_q": x_q, "x_r": x_r})

    def attach(self, trainer):
        if self.beta is None or self.natural is not None:
            return
        model, optimizer = trainer.model, trainer.optimizer
        self.natural = keras.models.clone_model(model)
        self.natural.set_weights(model.get_weights())
        self.natural_optimizer = optimizer.__class__.from_config(optimizer.get_config())
        self.natural_optimizer.build(self.natural.trainable_variables)
        self.anchor = [self.add_weight(shape=w.shape, dtype=w.dtype, initializer="zeros",
                                       trainable=False, name=f"theta_old_{i}")
                       for i, w in enumerate(model.weights)]

    def after_update(self, trainer, step: TrainingStep):
        """One step of the natural copy on the clean batch: the trainer's loss (its
        compiled cross-entropy, sample weights, weight decay) with the copy's logits."""
        if self.natural is None:
            return
        with tf.GradientTape() as tape:
            logits = trainer.compute.count(self.natural(step.x, training=True))
            loss = trainer.regularized_loss(step.x, step.y, logits, step.sample_weight,
                                            self.natural.trainable_weights)
        grads = tape.gradient(loss, self.natural.trainable_weights)
        self.natural_optimizer.apply(grads, self.natural.trainable_weights)

    def callbacks(self):
        return [] if self.beta is None else [_Projection(self)]

    def start_epoch(self, model) -> None:
        """theta_old and the natural copy <- the model's weights."""
        for a, n, w in zip(self.anchor, self.natural.weights, model.weights):
            a.assign(w)
            n.assign(w)

    def end_epoch(self, model) -> None:
        """The model's weights (and the copy's) <- the projection of the epoch's two
        moves (`fuse`)."""
        for a, n, w in zip(self.anchor, self.natural.weights, model.weights):
            fused = fuse(a, w, n, self.beta)
            w.assign(fused)
            n.assign(fused)

    def loss_term(self, model, output, sample_weight):
        logits_q = model(tf.stop_gradient(output.extra["x_q"]), training=True)
        logits_r = model(tf.stop_gradient(output.extra["x_r"]), training=True)
        return self.lam * kl_on_correct(logits_q, logits_r, output.y, sample_weight)


class _Projection(keras.callbacks.Callback):
    """RAMP's gradient projection at epoch boundaries (see `RAMP`)."""

    def __init__(self, ramp: RAMP):
        super().__init__()
        self.ramp = ramp

    def on_epoch_begin(self, epoch, logs=None):
        self.ramp.start_epoch(self.model.model)

    def on_epoch_end(self, epoch, logs=None):
        self.ramp.end_epoch(self.model.model)


def kl_on_correct(logits_p: tf.Tensor, logits_q: tf.Tensor, y: tf.Tensor,
                  sample_weight=None) -> tf.Tensor:
    """RAMP's consistency term: the mean over the examples `logits_p` classifies correctly
    (weighted by `sample_weight`) of KL(softmax(logits_p) || softmax(logits_q)); 0 when
    there are none. Gradients flow into both sides."""
    logits_p = tf.cast(logits_p, tf.float32)
    logits_q = tf.cast(logits_q, tf.float32)
    log_p = tf.nn.log_softmax(logits_p)
    kl = tf.reduce_sum(tf.exp(log_p) * (log_p - tf.nn.log_softmax(logits_q)), axis=1)
    correct = tf.argmax(logits_p, axis=1, output_type=tf.int32) == tf.cast(y, tf.int32)
    w = tf.cast(correct, tf.float32)
    if sample_weight is not None:
        w *= tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(w * kl), tf.reduce_sum(w))


def fuse(old, adv, nat, beta: float) -> tf.Tensor:
    """RAMP's gradient projection of one weight tensor: over one epoch from theta_old,
    adversarial training moved it by g_a = theta_adv - theta_old and natural training by
    g_n = theta_nat - theta_old; the new value keeps (1 - beta) of the adversarial move
    and adds beta times the natural move scaled by their cosine where that is positive:

        theta_new = theta_old + (1 - beta) g_a + beta * max(cos(g_a, g_n), 0) * g_n

    with the cosine over the whole tensor (flattened; the product of the two norms
    floored at 1e-8). Scalars (step counters) take theta_adv. Pure TensorFlow.
    """
    old, adv, nat = (tf.convert_to_tensor(t) for t in (old, adv, nat))
    if old.shape.rank == 0:
        return adv
    g_a, g_n = adv - old, nat - old
    denom = tf.maximum(tf.norm(tf.reshape(g_a, [-1])) * tf.norm(tf.reshape(g_n, [-1])), 1e-8)
    cos = tf.reduce_sum(g_a * g_n) / denom
    return old + (1.0 - beta) * g_a + beta * tf.maximum(cos, 0.0) * g_n
