"""Training adversaries: clean batch in, adversarial batch out (PAPER_NOTES section 4).

`none` (standard training), `linf` / `l2` / `l1` (single-norm PGD), `msd`, `max`
(worst case over the three PGD attacks), `avg` (the three PGD results together,
a 3x batch) and `eat` (E-AT: one norm per batch, sampled in proportion to each
norm's running adversarial error; Croce and Hein, ICML 2022, arXiv:2105.12508).
Graph-level; called inside the Keras `train_step`.
"""

import dataclasses
from typing import Sequence

import tensorflow as tf

from msd_tf.attacks import base, msd_delta, pgd_delta, worst_case_delta
from msd_tf.threats import ThreatModel

ADVERSARIES = ("none", "linf", "l2", "l1", "msd", "max", "avg", "eat")


@dataclasses.dataclass
class AdversaryOutput:
    """`x_adv`, `y_adv` to train on (3x the batch for avg) and `counts` [3] of which
    norm (linf, l2, l1) each example or MSD move came from (zeros where meaningless)."""

    x: tf.Tensor
    y: tf.Tensor
    counts: tf.Tensor


@dataclasses.dataclass(frozen=True)
class Adversary:
    """A training adversary.

    Attributes:
      name: one of `ADVERSARIES`.
      threats: the l_inf, l_2, l_1 `ThreatModel`s (in that order; single-norm
        adversaries use the one of their norm).
      msd_steps: MSD iterations (None: the largest `steps` of `threats`).
      training: the `training=` flag of model calls inside the attack (False: BatchNorm
        uses its moving statistics and the attack does not update them).
    """

    name: str
    threats: tuple[ThreatModel, ...] = ()
    msd_steps: int | None = None
    training: bool = False

    def __post_init__(self):
        if self.name not in ADVERSARIES:
            raise ValueError(f"Adversary `name` must be one of {ADVERSARIES}. "
                             f"Received: name={self.name!r}")
        if self.name != "none" and not self.threats:
            raise ValueError(f"Adversary {self.name!r} needs `threats`.")
        if self.name in ("linf", "l2", "l1"):
            self.threat(self.name)  # raises if missing

    def threat(self, norm: str) -> ThreatModel:
        for t in self.threats:
            if t.norm == norm:
                return t
        raise ValueError(f"Adversary {self.name!r} has no {norm} ThreatModel.")

    def __call__(self, model, x: tf.Tensor, y: tf.Tensor, seed: tf.Tensor,
                 norm_error: tf.Tensor | None = None,
                 shared_seed: tf.Tensor | None = None) -> AdversaryOutput:
        """Makes the adversarial batch.

        Args:
          seed: `[2]` stateless seed of this step (and replica).
          norm_error: `eat` only: `[len(threats)]` running adversarial error per threat;
            the norm is drawn with probability proportional to it.
          shared_seed: `eat` only: a seed equal on all replicas, for that draw (so all
            replicas train on the same norm); defaults to `seed`.
        """
        zeros = tf.zeros([3], tf.float32)
        if self.name == "eat":
            return self._eat(model, x, y, seed, norm_error,
                             seed if shared_seed is None else shared_seed)
        kw = dict(training=self.training)
        if self.name == "none":
            return AdversaryOutput(x, y, zeros)
        if self.name in ("linf", "l2", "l1"):
            out = pgd_delta(model, x, y, self.threat(self.name), seed, **kw)
            return AdversaryOutput(base.adversarial_images(x, out.delta), y, zeros)
        if self.name == "msd":
            out = msd_delta(model, x, y, self.threats, seed, steps=self.msd_steps, **kw)
        elif self.name == "max":
            out = worst_case_delta(model, x, y, self.threats, seed, **kw)
        else:  # avg: train on all three PGD results
            outs = [pgd_delta(model, x, y, t, base.fold(seed, i), **kw)
                    for i, t in enumerate(self.threats)]
            x_all = tf.concat([base.adversarial_images(x, o.delta) for o in outs], axis=0)
            batch = tf.cast(tf.shape(x)[0], tf.float32)
            return AdversaryOutput(x_all, tf.concat([y] * len(outs), axis=0),
                                   tf.fill([3], batch))
        return AdversaryOutput(base.adversarial_images(x, out.delta), y,
                               _per_norm(out.counts, self.threats))

    def _eat(self, model, x, y, seed, norm_error, shared_seed):
        if norm_error is None:
            norm_error = tf.ones([len(self.threats)])
        choice = _eat_choice(norm_error, base.fold(shared_seed, base.K_STREAM + 1))
        branches = [
            (lambda t=t: pgd_delta(model, x, y, t, seed, training=self.training).delta)
            for t in self.threats]
        delta = tf.switch_case(choice, branches)
        one_hot = tf.one_hot(choice, len(self.threats)) * tf.cast(tf.shape(x)[0], tf.float32)
        return AdversaryOutput(base.adversarial_images(x, delta), y,
                               _per_norm(one_hot, self.threats))


def _eat_choice(norm_error: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Index drawn with probability proportional to `norm_error` (floored at 1e-3)."""
    p = tf.maximum(tf.cast(norm_error, tf.float32), 1e-3)
    return tf.random.stateless_categorical(tf.math.log(p / tf.reduce_sum(p))[None], 1,
                                           seed, dtype=tf.int32)[0, 0]


def _per_norm(counts: tf.Tensor, threats: Sequence[ThreatModel]) -> tf.Tensor:
    """Reorders `counts` (one per threat) into (linf, l2, l1) slots."""
    slots = {"linf": 0, "l2": 1, "l1": 2}
    idx = [[slots[t.norm]] for t in threats]
    return tf.scatter_nd(idx, counts, [3])
