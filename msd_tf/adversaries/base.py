"""The adversary interface: `Adversary` (a Keras layer), what it returns
(`AdversaryOutput`), what it sees after the weight update (`TrainingStep`), and the
single-norm training attack the adversaries share (`train_attack_delta`)."""

import dataclasses
from typing import Sequence

import keras
import tensorflow as tf

from msd_tf.adversaries.catalog import Option
from msd_tf.attacks import pgd_delta
from msd_tf.attacks.apgd import apgd_delta
from msd_tf.attacks.base import AttackOutput
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


@dataclasses.dataclass(frozen=True)
class TrainingStep:
    """One training step as `Adversary.after_update` sees it, after the weight update.

    Attributes:
      x, y: the clean batch.
      sample_weight: its sample weights, or None.
      output: what the adversary's `perturb` returned for it (the batch trained on).
      logits: the model's logits on `output.x` (training mode, before the update).
    """

    x: tf.Tensor
    y: tf.Tensor
    sample_weight: tf.Tensor | None
    output: AdversaryOutput
    logits: tf.Tensor


def _per_norm(counts: tf.Tensor, threats: Sequence[ThreatModel]) -> tf.Tensor:
    """Reorders `counts` (one per threat) into the slots of `NORMS`."""
    idx = [[NORMS.index(t.norm)] for t in threats]
    return tf.scatter_nd(idx, counts, [len(NORMS)])


TRAIN_ATTACKS = ("pgd", "apgd")


def train_attack_delta(kind: str, model, x, y, threat: ThreatModel, seed, *,
                       training: bool = False, loss_fn=None) -> AttackOutput:
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
      training: the `training=` flag of model calls inside the attack (False: BatchNorm
        uses its moving statistics and the attack does not update them).
      train_attack: "pgd" or "apgd", the single-norm attack of the adversaries that
        run one (`uses_train_attack`); the others refuse "apgd".
    """

    needs_threats = True
    uses_train_attack = False  # runs single-norm attacks `train_attack` can choose
    options: tuple[Option, ...] = ()  # constructor options beyond the common ones
    takes_msd_steps = False  # MSD's iterations (`TrainConfig.msd_steps`, every run's)
    term_name: str | None = None  # the logged name of `loss_term`, if it has one

    def __init__(self, threats: Sequence[ThreatModel] = (), *, training: bool = False,
                 train_attack: str = "pgd", **kwargs):
        super().__init__(**kwargs)
        self.threats = tuple(threats)
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

    def single(self, model, x, y, threat, seed) -> AttackOutput:
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

    def attach(self, trainer) -> None:
        """Called by `AdversarialTrainer.compile` (outside any graph, in the strategy's
        scope): where an adversary creates state that depends on the model or the
        optimizer (RAMP's natural copy). A no-op here."""

    def after_update(self, trainer, step: TrainingStep) -> None:
        """Called in `train_step` (replica context) after the weight update: where an
        adversary learns from the step (E-AT's running error) or trains state of its own
        (RAMP's natural copy). A no-op here."""

    def callbacks(self) -> list:
        """Keras callbacks `AdversarialTrainer.fit` runs first (before the caller's, so
        before a checkpoint is written at an epoch's end). None here."""
        return []

    def loss_term(self, model, output: AdversaryOutput, sample_weight) -> tf.Tensor | None:
        """A scalar the trainer adds to its loss inside the gradient tape (logged as
        `term_name`), computed with `model` in training mode; None: nothing (here)."""
        return None
