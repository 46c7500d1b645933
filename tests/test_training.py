import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.adversaries import make_adversary
from msd_tf.attacks.losses import cross_entropy
from msd_tf.seeding import fold
from msd_tf.threats import NORMS, L1Step, ThreatModel
from tests.attacks.helpers import digits

# Deterministic adversary: MSD has no random start, and k1 == k2 removes the random k.
THREATS = (ThreatModel("linf", 0.3, 0.05, 3), ThreatModel("l2", 2.0, 0.4, 3),
           ThreatModel("l1", 10.0, 2.0, 3, l1=L1Step(k_range=(10, 10))))


def _trainer(strategy, adversary_name, seed=0, **compile_kwargs):
    from msd_tf.models import mnist_cnn
    from msd_tf.training import AdversarialTrainer

    with strategy.scope():
        keras.utils.set_random_seed(seed)
        model = mnist_cnn()
        trainer = AdversarialTrainer(model, make_adversary(adversary_name, THREATS, msd_steps=3),
                                     seed=seed, weight_decay=1e-3)
        trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        **compile_kwargs)
    return trainer, model


def _one_step(strategy, adversary_name, x, y):
    trainer, model = _trainer(strategy, adversary_name)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    trainer.fit(ds, epochs=1, verbose=0)
    return [w.numpy() for w in model.weights], trainer


@pytest.mark.parametrize("name", ["msd", "avg"])
def test_mirrored_step_matches_single_device(name):
    x, y = digits(8, seed=1)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(cpus) == 2, "conftest splits the CPU into two logical devices"
    single, _ = _one_step(tf.distribute.OneDeviceStrategy(cpus[0]), name, x, y)
    mirrored, trainer = _one_step(tf.distribute.MirroredStrategy(cpus), name, x, y)
    assert trainer.distribute_strategy.num_replicas_in_sync == 2
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    changed = any(np.abs(a - b).max() > 1e-4 for a, b in
                  zip(single, _one_step(tf.distribute.OneDeviceStrategy(cpus[0]), "none",
                                        x, y)[0]))
    assert changed, "the adversary must change the update"


def test_fit_under_a_strategy_builds_an_unbuilt_classifier(recwarn):
    # Keras builds the trainer before fitting under a strategy; its default build would
    # only mark it built (with a warning) and leave an unbuilt classifier to the step.
    from msd_tf.training import AdversarialTrainer

    x, y = digits(8, seed=2)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])
        assert not model.built
        trainer = AdversarialTrainer(model, make_adversary("linf", THREATS[:1]))
        trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.built and model.weights[0].shape == (784, 10)
    assert not [w for w in recwarn if "build()" in str(w.message)]


def _by_hand(x, y, sample_weight=None):
    """One SGD step (lr 0.05, fresh momentum) on the MSD examples of step 0: weighted
    mean cross-entropy + weight decay 1e-3 / 2 * ||w||^2; returns (weights, loss)."""
    from msd_tf.models import mnist_cnn

    keras.utils.set_random_seed(0)
    ref = mnist_cnn()
    seed = fold(tf.constant([0, 0], tf.int64), 0)
    adv = make_adversary("msd", THREATS, msd_steps=3).perturb(
        ref, tf.constant(x), tf.constant(y), seed=seed, shared_seed=seed)
    sw = np.ones(len(x), np.float32) if sample_weight is None else sample_weight
    with tf.GradientTape() as tape:
        ce = cross_entropy(ref(adv.x, training=True), y)
        loss = tf.reduce_sum(ce * sw) / len(x)  # Keras' "sum_over_batch_size"
        loss += 0.5e-3 * tf.add_n([tf.reduce_sum(w ** 2) for w in ref.trainable_weights])
    grads = tape.gradient(loss, ref.trainable_weights)
    return [w.numpy() - 0.05 * g.numpy() for w, g in zip(ref.trainable_weights, grads)], \
        float(loss)


@pytest.mark.parametrize("mode", ["graph", "eager", "xla"])
def test_train_step_is_the_hand_computed_update_in_every_execution_mode(mode):
    x, y = digits(16, seed=2)
    kwargs = {"graph": {}, "eager": {"run_eagerly": True}, "xla": {"jit_compile": True}}[mode]
    trainer, model = _trainer(tf.distribute.get_strategy(), "msd",
                              metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
                              **kwargs)
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1,
                       verbose=0).history
    fractions = [logs[f"chose_{n}"][0] for n in NORMS]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-5)
    want, loss = _by_hand(x, y)
    for w, new in zip(want, model.trainable_weights):
        np.testing.assert_allclose(new.numpy(), w, rtol=1e-4, atol=1e-6)
    # `loss` is the optimized loss (cross-entropy + weight decay); compiled metrics are
    # computed on the adversarial batch, like adv_acc.
    assert logs["loss"][0] == pytest.approx(loss, rel=1e-4)
    assert logs["acc"][0] == pytest.approx(logs["adv_acc"][0])
    assert {"adv_loss", "clean_loss", "clean_acc"} <= set(logs)


def test_sample_weights_weight_the_loss_and_the_metrics():
    x, y = digits(16, seed=3)
    sw = np.where(np.arange(16) < 8, 2.0, 0.0).astype(np.float32)  # the second half ignored
    trainer, model = _trainer(tf.distribute.get_strategy(), "msd")
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y, sw)).batch(16), epochs=1,
                       verbose=0).history
    want, loss = _by_hand(x, y, sw)
    for w, new in zip(want, model.trainable_weights):
        np.testing.assert_allclose(new.numpy(), w, rtol=1e-4, atol=1e-6)
    assert logs["loss"][0] == pytest.approx(loss, rel=1e-4)
    # AVG repeats the weights over its 3x batch: the examples of weight 0 still count for
    # nothing. Relabelled, they change neither the update nor the metrics (the attack is
    # per example); with unit weights the same relabelling does change them.
    relabelled = np.where(sw > 0, y, (y + 1) % 10).astype(y.dtype)

    def avg_step(labels, weights):
        trainer, model = _trainer(tf.distribute.get_strategy(), "avg")
        out = trainer.train_step((tf.constant(x), tf.constant(labels), tf.constant(weights)))
        return {k: float(v) for k, v in out.items()}, [w.numpy() for w in model.weights]

    (a, wa), (b, wb) = avg_step(y, sw), avg_step(relabelled, sw)
    assert a["adv_acc"] == b["adv_acc"] and a["adv_loss"] == b["adv_loss"]
    for u, v in zip(wa, wb):
        np.testing.assert_array_equal(u, v)
    ones = np.ones_like(sw)
    assert avg_step(y, ones)[0]["adv_loss"] != avg_step(relabelled, ones)[0]["adv_loss"]


def test_evaluate_reports_clean_metrics_only():
    x, y = digits(16, seed=4)
    trainer, model = _trainer(tf.distribute.get_strategy(), "msd")
    logs = trainer.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "clean_loss", "clean_acc"}
    want = np.mean(model.predict(x, verbose=0).argmax(1) == y)
    assert logs["clean_acc"] == pytest.approx(want)


@pytest.mark.parametrize("strategy_name", ["one", "mirrored"])
def test_compute_counts_every_example_pass(strategy_name):
    """MSD with k iterations on a batch B: k x (a gradient on B + one forward of the 3B
    candidates), then the weight update (forward + backward on B) and the clean
    forward for the metrics: forward (4k + 2) B, backward (k + 1) B per step, summed
    over replicas; standard training B and B."""
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = (tf.distribute.OneDeviceStrategy(cpus[0]) if strategy_name == "one"
                else tf.distribute.MirroredStrategy(cpus))
    x, y = digits(8, seed=2)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)  # 2 steps of 4
    for name, fwd, bwd in (("msd", 2 * (4 * 3 + 2) * 4, 2 * (3 + 1) * 4),
                           ("none", 2 * 4, 2 * 4)):
        trainer, _ = _trainer(strategy, name)
        logs = trainer.fit(ds, epochs=1, verbose=0).history
        assert (logs["forward_examples"], logs["backward_examples"]) == ([fwd], [bwd]), name
