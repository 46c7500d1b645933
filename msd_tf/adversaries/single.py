"""The adversaries built from single-norm attacks (PGD, or APGD with
`train_attack="apgd"`): none (standard training), linf / l2 / l1, max and avg."""

import functools

import tensorflow as tf

from msd_tf.adversaries.base import Adversary, AdversaryOutput, _per_norm, train_attack_delta
from msd_tf.attacks import worst_case_delta
from msd_tf.attacks.base import adversarial_images
from msd_tf.seeding import fold
from msd_tf.threats import NORMS


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
        return AdversaryOutput(adversarial_images(x, out.delta), y,
                               tf.zeros([len(NORMS)], tf.float32))


class Max(Adversary):
    """The worst case (highest loss) of the single-norm attacks, per example."""

    uses_train_attack = True

    def perturb(self, model, x, y, *, seed, shared_seed):
        out = worst_case_delta(model, x, y, self.threats, seed, training=self.attack_training,
                               single=functools.partial(train_attack_delta, self.train_attack))
        return AdversaryOutput(adversarial_images(x, out.delta), y,
                               _per_norm(out.counts, self.threats))


class Avg(Adversary):
    """All the single-norm attack results together: a `len(threats)` times batch."""

    uses_train_attack = True

    def perturb(self, model, x, y, *, seed, shared_seed):
        outs = [self.single(model, x, y, t, fold(seed, i)) for i, t in enumerate(self.threats)]
        x_all = tf.concat([adversarial_images(x, o.delta) for o in outs], axis=0)
        batch = tf.cast(tf.shape(x)[0], tf.float32)
        return AdversaryOutput(x_all, tf.concat([y] * len(outs), axis=0),
                               _per_norm(tf.fill([len(outs)], batch), self.threats),
                               repeats=len(outs))
