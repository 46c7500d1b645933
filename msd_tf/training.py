"""`AdversarialTrainer`: a Keras model whose `train_step` trains on adversarial examples.

`fit()`, callbacks, checkpoints, `evaluate()`, compiled metrics and sample weights work
as for any Keras model; only `train_step` and `test_step` are overridden (as in the
Keras custom-train-step guide). It runs eagerly (`run_eagerly=True`), as a graph, and
under XLA (`jit_compile=True`).

Loss scaling under a distribution strategy: the cross-entropy goes through
`compute_loss` (a Keras loss, which already divides by `num_replicas_in_sync`);
the hand-written L2 weight-decay term is divided by `num_replicas_in_sync` here,
because gradients are summed across replicas.
"""

import keras
import tensorflow as tf

from msd_tf import compute
from msd_tf.adversaries import Adversary, TrainingStep
from msd_tf.attacks.losses import cross_entropy
from msd_tf.seeding import fold
from msd_tf.threats import NORMS


class AdversarialTrainer(keras.Model):
    """Wraps `model` (images in [0, 1] -> logits) and trains it adversarially.

    Logs `loss` (the optimized loss: the compiled loss on the adversarial batch, plus
    weight decay, plus the adversary's `loss_term`, logged alone under its
    `term_name`, e.g. RAMP's `ramp_kl`), `adv_loss` / `adv_acc` (on the adversarial
    batch), `clean_loss` / `clean_acc` (on the clean batch), `chose_<norm>` (where the
    adversarial examples or MSD moves came from) and every metric passed to `compile`
    (on the adversarial batch). Sample weights (`fit(x, y, sample_weight=...)`) weight
    the loss and every metric; AVG's 3x batch repeats them.

    Args:
      model: the classifier (exported on its own after training).
      adversary: an `adversaries.Adversary` (its state, e.g. E-AT's running error, is
        tracked as this model's weights).
      seed: base seed; the attack at optimizer step s uses the stateless seed
        (seed, s) folded with the replica id, so runs are reproducible and a
        resumed run continues with the same random numbers.
      weight_decay: coupled L2 penalty (PyTorch SGD's `weight_decay`): adds
        `weight_decay / 2 * sum(w^2)` over the trainable weights to the loss.

    Example:
      >>> trainer = AdversarialTrainer(mnist_cnn(), make_adversary("msd", threats))
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
        self.norm_fraction = [keras.metrics.Mean(name=f"chose_{n}") for n in NORMS]
        self.term = (keras.metrics.Mean(name=adversary.term_name)
                     if adversary.term_name else None)
        # Forward / backward example-passes of the model in training (attacks included).
        self.compute = compute.Counter()
        self.forward_examples, self.backward_examples = self.compute.forward, self.compute.backward
        self._counted = self.compute.wrap(model)

    def call(self, x, training=False):
        return self.model(x, training=training)

    def build(self, input_shape):
        """Builds the wrapped classifier: `fit` under a distribution strategy builds the
        trainer first, and Keras' default build would only warn and mark it built."""
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def compile(self, *args, **kwargs):
        """Keras' compile, then the adversary's `attach` (state that needs the model and
        the optimizer, e.g. RAMP's natural copy)."""
        super().compile(*args, **kwargs)
        self.adversary.attach(self)

    def fit(self, *args, callbacks=None, **kwargs):
        """Keras' fit, with the adversary's callbacks (e.g. RAMP's gradient projection)
        before the caller's."""
        return super().fit(*args, callbacks=self.adversary.callbacks() + list(callbacks or []),
                           **kwargs)

    def step_seed(self, *, per_replica: bool = True) -> tf.Tensor:
        """The `[2]` stateless seed of the current optimizer step (on this replica, unless
        `per_replica=False`: then the same on all replicas)."""
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        if not per_replica:
            return seed
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        return fold(seed, replica_id)

    def _replicas(self) -> int:
        return tf.distribute.get_strategy().num_replicas_in_sync

    def regularized_loss(self, x, y, logits, sample_weight, weights) -> tf.Tensor:
        """The compiled loss of `logits` plus the weight decay of `weights`, per replica:
        what a training step minimizes (also RAMP's natural copy's, with its weights)."""
        loss = self.compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight,
                                 training=True)
        if self.weight_decay:
            l2 = tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights])
            loss += 0.5 * self.weight_decay * l2 / self._replicas()
        return loss

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        adv = self.adversary.perturb(self._counted, x, y, seed=self.step_seed(),
                                     shared_seed=self.step_seed(per_replica=False))
        x_adv = tf.stop_gradient(adv.x)
        sw_adv = None if sample_weight is None else tf.concat([sample_weight] * adv.repeats, 0)
        with tf.GradientTape() as tape:
            logits = self._counted(x_adv, training=True)
            loss = self.regularized_loss(x_adv, adv.y, logits, sw_adv,
                                         self.model.trainable_weights)
            term = self.adversary.loss_term(self._counted, adv, sample_weight)
            if term is not None:  # e.g. RAMP's KL; scaled per replica as compute_loss is
                loss += term / self._replicas()
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, self.model.trainable_weights)
        self.optimizer.apply(grads, self.model.trainable_weights)
        # The adversary's hook (E-AT's running error, RAMP's natural copy).
        self.adversary.after_update(self, TrainingStep(x=x, y=y, sample_weight=sample_weight,
                                                       output=adv, logits=logits))
        # Reported per replica as Keras does: the loss before the 1/replicas scaling.
        self._loss_tracker.update_state(loss * self._replicas(), sample_weight=tf.shape(x)[0])
        self.adv_loss.update_state(cross_entropy(logits, adv.y), sample_weight=sw_adv)
        self.adv_acc.update_state(adv.y, logits, sample_weight=sw_adv)
        if adv.x is x:  # no attack (standard training): the clean batch was trained on
            clean_logits = logits
        else:
            clean_logits = self._counted(x, training=False)
        self.clean_loss.update_state(cross_entropy(clean_logits, y),
                                     sample_weight=sample_weight)
        self.clean_acc.update_state(y, clean_logits, sample_weight=sample_weight)
        total = tf.maximum(tf.reduce_sum(adv.counts), 1.0)
        for i, tracker in enumerate(self.norm_fraction):
            tracker.update_state(adv.counts[i] / total)
        if self.term is not None:
            self.term.update_state(term)
        return self.compute_metrics(x_adv, adv.y, logits, sample_weight=sw_adv)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.model(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=logits, sample_weight=sample_weight,
                                 training=False)
        self._loss_tracker.update_state(loss * self._replicas(), sample_weight=tf.shape(x)[0])
        self.clean_loss.update_state(cross_entropy(logits, y), sample_weight=sample_weight)
        self.clean_acc.update_state(y, logits, sample_weight=sample_weight)
        logs = self.compute_metrics(x, y, logits, sample_weight=sample_weight)
        training_only = {self.adversary.term_name, self.forward_examples.name,
                         self.backward_examples.name}
        return {k: v for k, v in logs.items()
                if not k.startswith(("adv_", "chose_")) and k not in training_only}
