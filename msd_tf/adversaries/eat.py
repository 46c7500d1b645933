"""E-AT as a training adversary (Croce and Hein, ICML 2022, arXiv:2105.12508): one norm
per batch, drawn in proportion to each norm's running adversarial error."""

import tensorflow as tf

from msd_tf.adversaries.base import Adversary, AdversaryOutput, TrainingStep, _per_norm
from msd_tf.attacks.base import adversarial_images
from msd_tf.seeding import EAT_STREAM, fold
from msd_tf.threats import NORMS


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
        return AdversaryOutput(adversarial_images(x, delta), y,
                               _per_norm(one_hot, self.threats))

    def after_update(self, trainer, step: TrainingStep):
        """Moves the drawn norm's running error toward this step's adversarial error
        (the error of `step.logits`, averaged over replicas)."""
        error = tf.reduce_mean(tf.cast(
            tf.argmax(step.logits, axis=1, output_type=tf.int32)
            != tf.cast(step.output.y, tf.int32), tf.float32))
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            error = replica.all_reduce("MEAN", error)
        chosen = tf.gather(tf.cast(step.output.counts > 0, tf.float32),
                           [NORMS.index(t.norm) for t in self.threats])
        m = self.momentum
        self.norm_error.assign(self.norm_error * (1 - chosen * (1 - m))
                               + chosen * (1 - m) * error)


def eat_choice(norm_error: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Index drawn with probability proportional to `norm_error` (floored at 1e-3)."""
    p = tf.maximum(tf.cast(norm_error, tf.float32), 1e-3)
    return tf.random.stateless_categorical(tf.math.log(p / tf.reduce_sum(p))[None], 1,
                                           seed, dtype=tf.int32)[0, 0]
