"""Training adversaries: clean batch in, adversarial batch out (PAPER_NOTES section 4).

One class per adversary, chosen by name through `ADVERSARIES` (`make_adversary`):

  none        standard training
  linf l2 l1  single-norm PGD (P_inf, P_2, P_1)
  msd         multi steepest descent over the union
  max         worst case over the three PGD attacks
  avg         the three PGD results together (a 3x batch)
  eat         E-AT: one norm per batch, drawn in proportion to each norm's running
              adversarial error (Croce and Hein, ICML 2022, arXiv:2105.12508)
  ramp        RAMP: APGD in a source and a target norm, train on the worse of the two
              plus lambda * KL(p(x_q) || p(x_r)) on the examples x_q leaves correct
              (Jiang and Singh, NeurIPS 2024)

The single-norm attacks of linf/l2/l1, max, avg and eat are PGD, or with
`train_attack="apgd"` APGD as a training attack (`train_attack_delta`: E-AT's and RAMP's
`apgd_train`, the highest-loss point of a run from delta = 0); RAMP always uses APGD.

Adversaries are Keras layers, so that an adversary with state (E-AT's running error)
owns it as a weight that the trainer tracks and the run's checkpoint saves. Their
methods are graph-level: the Keras `train_step` calls them.

Adding an adversary: subclass `Adversary` (override `perturb`; `observe` if it learns
from the training step; `loss_term` and `term_name` if it adds a term to the loss; list
its own constructor options in `options`), then add one entry to `ADVERSARIES`.
"""

import dataclasses
import functools
from typing import Sequence

import keras
import tensorflow as tf

from msd_tf import projection
from msd_tf.attacks import base, msd_delta, pgd_delta, worst_case_delta
from msd_tf.attacks.apgd import apgd_delta
from msd_tf.attacks.randomness import fold
from msd_tf.seeding import EAT_STREAM
from msd_tf.threats import NORMS, ThreatModel


@dataclasses.dataclass
class AdversaryOutput:
    """The batch to train on and where it came from.

    Attributes:
      x, y: adversarial images and their labels (`repeats` times the batch for avg).
      counts: `[3]` how many examples (or MSD moves) came from each norm, in the order
        of `NORMS` (zeros where meaningless).
      repeats: how many copies of the clean batch `x` holds (sample weights repeat).
      extra: more batches the adversary's `loss_term` needs (RAMP: its two attacks'
        images), keyed by name.
    """

    x: tf.Tensor
    y: tf.Tensor
    counts: tf.Tensor
    repeats: int = 1
    extra: dict = dataclasses.field(default_factory=dict)


def _per_norm(counts: tf.Tensor, threats: Sequence[ThreatModel]) -> tf.Tensor:
    """Reorders `counts` (one per threat) into the slots of `NORMS`."""
    idx = [[NORMS.index(t.norm)] for t in threats]
    return tf.scatter_nd(idx, counts, [len(NORMS)])


TRAIN_ATTACKS = ("pgd", "apgd")


def train_attack_delta(kind: str, model, x, y, threat: ThreatModel, seed, *,
                       training: bool = False, loss_fn=None) -> base.AttackOutput:
    """One single-norm training attack on `threat`: `pgd_delta`, or ("apgd") APGD with the
    cross-entropy for `threat.steps` iterations from delta = 0 (from a random point of
    the ball if `threat.random_start`), returning its highest-loss point and without
    AutoAttack's l_1 radius schedule: E-AT's and RAMP's `apgd_train`."""
    if kind == "pgd":
        kw = {"loss_fn": loss_fn} if loss_fn is not None else {}
        return pgd_delta(model, x, y, threat, seed, training=training, **kw)
    if kind != "apgd":
        raise ValueError(f"Unknown training attack {kind!r}; known: {TRAIN_ATTACKS}.")
    return apgd_delta(model, x, y, threat, seed, loss=loss_fn or "ce", training=training,
                      l1_eps_factors=(1.0,),
                      start=None if threat.random_start else tf.zeros_like(x),
                      highest_loss=True)


class Adversary(keras.layers.Layer):
    """Base class: makes the adversarial training batch.

    Args:
      threats: the threat models of the union, one per norm.
      msd_steps: MSD iterations (None: the largest `steps` of `threats`).
      training: the `training=` flag of model calls inside the attack (False: BatchNorm
        uses its moving statistics and the attack does not update them).
      train_attack: "pgd" or "apgd", the single-norm attack of the adversaries that
        run one (`uses_train_attack`); the others refuse "apgd".
    """

    needs_threats = True
    uses_train_attack = False  # runs single-norm attacks `train_attack` can choose
    options: tuple[str, ...] = ()  # constructor options beyond the common ones
    term_name: str | None = None  # the logged name of `loss_term`, if it has one

    def __init__(self, threats: Sequence[ThreatModel] = (), *, msd_steps: int | None = None,
                 training: bool = False, train_attack: str = "pgd", **kwargs):
        super().__init__(**kwargs)
        self.threats = tuple(threats)
        self.msd_steps = msd_steps
        self.attack_training = bool(training)
        if train_attack not in TRAIN_ATTACKS:
            raise ValueError(f"Unknown training attack {train_attack!r}; known: "
                             f"{TRAIN_ATTACKS}.")
        if train_attack != "pgd" and not self.uses_train_attack:
            raise ValueError(f"Adversary {self.name!r} runs no single-norm PGD for "
                             f"train_attack={train_attack!r} to replace (it applies to "
                             f"linf, l2, l1, max, avg and eat).")
        self.train_attack = train_attack
        if self.needs_threats and not self.threats:
            raise ValueError(f"Adversary {self.name!r} needs `threats`.")

    def single(self, model, x, y, threat, seed) -> base.AttackOutput:
        """The configured single-norm attack on `threat` (`train_attack_delta`)."""
        return train_attack_delta(self.train_attack, model, x, y, threat, seed,
                                  training=self.attack_training)

    def threat(self, norm: str) -> ThreatModel:
        for t in self.threats:
            if t.norm == norm:
                return t
        raise ValueError(f"Adversary {self.name!r} needs an {norm} ThreatModel; it has "
                         f"{[t.norm for t in self.threats]} (set --norms).")

    def perturb(self, model, x: tf.Tensor, y: tf.Tensor, *, seed: tf.Tensor,
                shared_seed: tf.Tensor) -> AdversaryOutput:
        """The adversarial batch.

        Args:
          seed: `[2]` stateless seed of this step and replica.
          shared_seed: a seed equal on all replicas (for draws all replicas must share).
        """
        raise NotImplementedError

    def observe(self, logits: tf.Tensor, output: AdversaryOutput) -> None:
        """Called after the weight update with the training logits; a no-op here."""

    def attach(self, trainer) -> None:
        """Called by `AdversarialTrainer.compile` (outside any graph, in the strategy's
        scope): where an adversary creates state that depends on the model or the
        optimizer (RAMP's natural copy). A no-op here."""

    def after_update(self, trainer, x, y, sample_weight) -> None:
        """Called in `train_step` after the weight update with the clean batch. A no-op
        here."""

    def callbacks(self) -> list:
        """Keras callbacks `AdversarialTrainer.fit` runs first (before the caller's, so
        before a checkpoint is written at an epoch's end). None here."""
        return []

    def loss_term(self, model, output: AdversaryOutput, sample_weight) -> tf.Tensor | None:
        """A scalar the trainer adds to its loss inside the gradient tape (logged as
        `term_name`), computed with `model` in training mode; None: nothing (here)."""
        return None


class Standard(Adversary):
    """No attack: standard training."""

    needs_threats = False

    def perturb(self, model, x, y, *, seed, shared_seed):
        return AdversaryOutput(x, y, tf.zeros([len(NORMS)], tf.float32))


class SingleNorm(Adversary):
    """PGD (or APGD) in the ball of one norm (P_inf, P_2, P_1)."""

    uses_train_attack = True

    def __init__(self, norm: str, threats=(), **kwargs):
        super().__init__(threats, **kwargs)
        self.norm = norm
        self.threat(norm)  # raises if missing

    def perturb(self, model, x, y, *, seed, shared_seed):
        out = self.single(model, x, y, self.threat(self.norm), seed)
        return AdversaryOutput(base.adversarial_images(x, out.delta), y,
                               tf.zeros([len(NORMS)], tf.float32))


class MSD(Adversary):
    """Multi steepest descent (Algorithm 1): the worst of the steps at every iteration."""

    def perturb(self, model, x, y, *, seed, shared_seed):
        out = msd_delta(model, x, y, self.threats, seed, steps=self.msd_steps,
                        training=self.attack_training)
        return AdversaryOutput(base.adversarial_images(x, out.delta), y,
                               _per_norm(out.counts, self.threats))


class Max(Adversary):
    """The worst case (highest loss) of the single-norm attacks, per example."""

    uses_train_attack = True

    def perturb(self, model, x, y, *, seed, shared_seed):
        out = worst_case_delta(model, x, y, self.threats, seed, training=self.attack_training,
                               single=functools.partial(train_attack_delta, self.train_attack))
        return AdversaryOutput(base.adversarial_images(x, out.delta), y,
                               _per_norm(out.counts, self.threats))


class Avg(Adversary):
    """All the single-norm attack results together: a `len(threats)` times batch."""

    uses_train_attack = True

    def perturb(self, model, x, y, *, seed, shared_seed):
        outs = [self.single(model, x, y, t, fold(seed, i)) for i, t in enumerate(self.threats)]
        x_all = tf.concat([base.adversarial_images(x, o.delta) for o in outs], axis=0)
        batch = tf.cast(tf.shape(x)[0], tf.float32)
        return AdversaryOutput(x_all, tf.concat([y] * len(outs), axis=0),
                               _per_norm(tf.fill([len(outs)], batch), self.threats),
                               repeats=len(outs))


class EAT(Adversary):
    """E-AT: each batch is attacked with ONE norm's PGD (their code: APGD, our
    `train_attack="apgd"`), drawn with probability proportional to that norm's running
    adversarial error.

    The running error is an exponential moving average (momentum 0.9) per threat, a
    weight of this layer: the same on all replicas, saved with the run's checkpoint.
    """

    momentum = 0.9

    uses_train_attack = True

    def __init__(self, threats=(), **kwargs):
        super().__init__(threats, **kwargs)
        self.norm_error = self.add_weight(
            shape=(len(self.threats),), initializer="ones", trainable=False,
            name="norm_error", aggregation="only_first_replica")

    def perturb(self, model, x, y, *, seed, shared_seed):
        # All replicas draw with the same seed, so they train on the same norm.
        choice = eat_choice(self.norm_error, fold(shared_seed, EAT_STREAM))
        branches = [(lambda t=t: self.single(model, x, y, t, seed).delta)
                    for t in self.threats]
        delta = tf.switch_case(choice, branches)
        one_hot = tf.one_hot(choice, len(self.threats)) * tf.cast(tf.shape(x)[0], tf.float32)
        return AdversaryOutput(base.adversarial_images(x, delta), y,
                               _per_norm(one_hot, self.threats))

    def observe(self, logits, output):
        """Moves the drawn norm's running error toward this step's adversarial error
        (averaged over replicas)."""
        error = tf.reduce_mean(tf.cast(
            tf.argmax(logits, axis=1, output_type=tf.int32) != tf.cast(output.y, tf.int32),
            tf.float32))
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            error = replica.all_reduce("MEAN", error)
        chosen = tf.gather(tf.cast(output.counts > 0, tf.float32),
                           [NORMS.index(t.norm) for t in self.threats])
        m = self.momentum
        self.norm_error.assign(self.norm_error * (1 - chosen * (1 - m))
                               + chosen * (1 - m) * error)


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
    included) becomes `projection.fuse(theta_old, theta_adv, theta_nat, beta)`, the
    copy follows. The copy, its optimizer and theta_old are this layer's state, so the
    run's checkpoint holds them.
    """

    options = ("lam", "pair", "projection")
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
        x_q = base.adversarial_images(x, q.delta)
        x_r = base.adversarial_images(x, r.delta)
        take_q = q.loss > r.loss
        x_worse = tf.where(base.broadcast_mask(take_q, x), x_q, x_r)
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

    def after_update(self, trainer, x, y, sample_weight):
        """One step of the natural copy on the clean batch: the trainer's loss (its
        compiled cross-entropy, sample weights, weight decay) with the copy's logits."""
        if self.natural is None:
            return
        with tf.GradientTape() as tape:
            logits = trainer.compute.count(self.natural(x, training=True))
            loss = trainer.regularized_loss(x, y, logits, sample_weight,
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
        moves (`projection.fuse`)."""
        for a, n, w in zip(self.anchor, self.natural.weights, model.weights):
            fused = projection.fuse(a, w, n, self.beta)
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


def eat_choice(norm_error: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Index drawn with probability proportional to `norm_error` (floored at 1e-3)."""
    p = tf.maximum(tf.cast(norm_error, tf.float32), 1e-3)
    return tf.random.stateless_categorical(tf.math.log(p / tf.reduce_sum(p))[None], 1,
                                           seed, dtype=tf.int32)[0, 0]


ADVERSARIES = {
    "none": Standard,
    "linf": lambda threats, **kw: SingleNorm("linf", threats, **kw),
    "l2": lambda threats, **kw: SingleNorm("l2", threats, **kw),
    "l1": lambda threats, **kw: SingleNorm("l1", threats, **kw),
    "msd": MSD,
    "max": Max,
    "avg": Avg,
    "eat": EAT,
    "ramp": RAMP,
}


def make_adversary(name: str, threats: Sequence[ThreatModel] = (), *,
                   msd_steps: int | None = None, training: bool = False,
                   train_attack: str = "pgd", **options) -> Adversary:
    """The adversary registered as `name`; `options` are its own (`Class.options`, e.g.
    RAMP's `lam` and `pair`).

    Raises:
      ValueError: unknown `name` (the message lists the known ones), options it does
        not take, or threats that do not fit it.

    Example:
      >>> make_adversary("msd", threats.MSD_TRAIN["mnist"][0], msd_steps=100)
    """
    if name not in ADVERSARIES:
        raise ValueError(f"Unknown adversary {name!r}; known: {list(ADVERSARIES)}.")
    factory = ADVERSARIES[name]
    unknown = sorted(set(options) - set(getattr(factory, "options", ())))
    if unknown:
        raise ValueError(f"Adversary {name!r} takes no option(s) {unknown}.")
    return factory(tuple(threats), msd_steps=msd_steps, training=training,
                   train_attack=train_attack, name=f"adversary_{name}", **options)
