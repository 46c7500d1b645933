"""`AdversarialTrainer`: a Keras model whose `train_step` trains on adversarial examples.

`fit()`, callbacks, checkpoints and `evaluate()` work unchanged; only `train_step`
and `test_step` are overridden (as in the Keras custom-train-step guide).

Loss scaling under a distribution strategy: the cross-entropy goes through
`compute_loss` (a Keras loss, which already divides by `num_replicas_in_sync`);
the hand-written L2 weight-decay term is divided by `num_replicas_in_sync` here,
because gradients are summed across replicas.
"""

import keras
import tensorflow as tf

from msd_tf.adversaries import Adversary
from msd_tf.attacks import base


class AdversarialTrainer(keras.Model):
    """Wraps `model` (images in [0, 1] -> logits) and trains it adversarially.

    Args:
      model: the classifier (exported on its own after training).
      adversary: an `adversaries.Adversary`.
      seed: base seed; the attack at optimizer step s uses the stateless seed
        (seed, s) folded with the replica id, so runs are reproducible and a
        resumed run continues with the same random numbers.
      weight_decay: coupled L2 penalty (PyTorch SGD's `weight_decay`): adds
        `weight_decay / 2 * sum(w^2)` over the trainable weights to the loss.

    Example:
      >>> trainer = AdversarialTrainer(mnist_cnn(), Adversary("msd", threats, msd_steps=100))
      >>> trainer.compile(optimizer="adam",
      ...                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      >>> trainer.fit(train_ds, epochs=15, steps_per_epoch=600)
    """

    def __init__(self, model: keras.Model, adversary: Adversary, *, seed: int = 0,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.adversary = adversary
        self.seed = int(seed)
        self.weight_decay = float(weight_decay)
        self.clean_loss = keras.metrics.Mean(name="clean_loss")
        self.clean_acc = keras.metrics.SparseCategoricalAccuracy(name="clean_acc")
        self.adv_loss = keras.metrics.Mean(name="adv_loss")
        self.adv_acc = keras.metrics.SparseCategoricalAccuracy(name="adv_acc")
        self.norm_fraction = [keras.metrics.Mean(name=f"chose_{n}")
                              for n in ("linf", "l2", "l1")]
        # E-AT: running adversarial error per threat model (EMA, momentum `eat_momentum`),
        # the same on every replica; checkpointed with the optimizer so resumption is exact.
        self.eat_momentum = 0.9
        self.norm_error = self.add_weight(
            shape=(max(len(adversary.threats), 1),), initializer="ones", trainable=False,
            name="norm_error", aggregation="only_first_replica")

    def call(self, x, training=False):
        return self.model(x, training=training)

    @property
    def metrics(self):
        return [self.clean_loss, self.clean_acc, self.adv_loss, self.adv_acc,
                *self.norm_fraction]

    def step_seed(self, *, per_replica: bool = True) -> tf.Tensor:
        """The `[2]` stateless seed of the current optimizer step (on this replica, unless
        `per_replica=False`: then the same on all replicas)."""
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        if not per_replica:
            return seed
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        return base.fold(seed, replica_id)

    def _update_norm_error(self, logits, adv):
        """EMA of the adversarial error of the norm used in this step, averaged over
        replicas (all replicas drew the same norm: E-AT's draw uses the shared seed)."""
        error = tf.reduce_mean(tf.cast(
            tf.argmax(logits, axis=1, output_type=tf.int32) != tf.cast(adv.y, tf.int32),
            tf.float32))
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            error = replica.all_reduce("MEAN", error)
        chosen = tf.cast(adv.counts > 0, tf.float32)
        chosen = tf.gather(chosen, [i for i, n in enumerate(("linf", "l2", "l1"))
                                    if n in {t.norm for t in self.adversary.threats}])
        m = self.eat_momentum
        self.norm_error.assign(self.norm_error * (1 - chosen * (1 - m))
                               + chosen * (1 - m) * error)

    def train_step(self, data):
        x, y = data[0], data[1]
        eat = self.adversary.name == "eat"
        adv = self.adversary(self.model, x, y, self.step_seed(),
                             norm_error=self.norm_error if eat else None,
                             shared_seed=self.step_seed(per_replica=False) if eat else None)
        x_adv = tf.stop_gradient(adv.x)
        with tf.GradientTape() as tape:
            logits = self.model(x_adv, training=True)
            loss = self.compute_loss(x=x_adv, y=adv.y, y_pred=logits, training=True)
            if self.weight_decay:
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                l2 = tf.add_n([tf.reduce_sum(tf.square(w)) for w in self.model.trainable_weights])
                loss += 0.5 * self.weight_decay * l2 / replicas
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_weights)
        self.optimizer.apply(grads, self.model.trainable_weights)
        per_example = base.cross_entropy(logits, adv.y)
        if self.adversary.name == "eat":
            self._update_norm_error(logits, adv)
        self.adv_loss.update_state(per_example)
        self.adv_acc.update_state(adv.y, logits)
        if self.adversary.name == "none":
            self.clean_loss.update_state(per_example)
            self.clean_acc.update_state(adv.y, logits)
        else:
            clean_logits = self.model(x, training=False)
            self.clean_loss.update_state(base.cross_entropy(clean_logits, y))
            self.clean_acc.update_state(y, clean_logits)
        total = tf.maximum(tf.reduce_sum(adv.counts), 1.0)
        for i, tracker in enumerate(self.norm_fraction):
            tracker.update_state(adv.counts[i] / total)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        logits = self.model(x, training=False)
        self.clean_loss.update_state(base.cross_entropy(logits, y))
        self.clean_acc.update_state(y, logits)
        return {m.name: m.result() for m in (self.clean_loss, self.clean_acc)}
