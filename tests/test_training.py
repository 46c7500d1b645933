import numpy as np
import pytest
import tensorflow as tf

from msd_tf.adversaries import Adversary
from msd_tf.attacks import base
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits

# Deterministic adversary: MSD has no random start, and k1 == k2 removes the random k.
THREATS = (ThreatModel("linf", 0.3, 0.05, 3), ThreatModel("l2", 2.0, 0.4, 3),
           ThreatModel("l1", 10.0, 2.0, 3, k_range=(10, 10)))


def _trainer(strategy, adversary, seed=0):
    import keras

    from msd_tf.models import mnist_cnn
    from msd_tf.training import AdversarialTrainer

    with strategy.scope():
        keras.utils.set_random_seed(seed)
        model = mnist_cnn()
        trainer = AdversarialTrainer(model, adversary, seed=seed, weight_decay=1e-3)
        trainer.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return trainer, model


def _one_step(strategy, adversary, x, y):
    trainer, model = _trainer(strategy, adversary)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    trainer.fit(ds, epochs=1, verbose=0)
    return [w.numpy() for w in model.weights], trainer


@pytest.mark.parametrize("name", ["msd", "avg"])
def test_mirrored_step_matches_single_device(name):
    x, y = digits(8, seed=1)
    adversary = Adversary(name, THREATS, msd_steps=3)
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(cpus) == 2, "conftest splits the CPU into two logical devices"
    single, _ = _one_step(tf.distribute.OneDeviceStrategy(cpus[0]), adversary, x, y)
    mirrored, trainer = _one_step(tf.distribute.MirroredStrategy(cpus), adversary, x, y)
    assert trainer.distribute_strategy.num_replicas_in_sync == 2
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    changed = any(np.abs(a - b).max() > 1e-4 for a, b in
                  zip(single, _one_step(tf.distribute.OneDeviceStrategy(cpus[0]),
                                        Adversary("none"), x, y)[0]))
    assert changed, "the adversary must change the update"


def test_train_step_uses_adversarial_examples_and_logs_norm_choice():
    import keras

    x, y = digits(16, seed=2)
    trainer, model = _trainer(tf.distribute.get_strategy(), Adversary("msd", THREATS, msd_steps=3))
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1,
                       verbose=0).history
    fractions = [logs[f"chose_{n}"][0] for n in ("linf", "l2", "l1")]
    assert sum(fractions) == pytest.approx(1.0, abs=1e-5)
    # Reproduce the update by hand: the MSD examples of step 0, then one SGD step on
    # cross-entropy + weight decay.
    keras.utils.set_random_seed(0)
    from msd_tf.models import mnist_cnn

    ref = mnist_cnn()
    seed = base.fold(tf.constant([0, 0], tf.int64), 0)
    adv = Adversary("msd", THREATS, msd_steps=3)(ref, tf.constant(x), tf.constant(y), seed)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(base.cross_entropy(ref(adv.x, training=True), y))
        loss += 0.5e-3 * tf.add_n([tf.reduce_sum(w ** 2) for w in ref.trainable_weights])
    grads = tape.gradient(loss, ref.trainable_weights)
    for w, g, new in zip(ref.trainable_weights, grads, model.trainable_weights):
        np.testing.assert_allclose(new.numpy(), w.numpy() - 0.05 * g.numpy(), rtol=1e-4,
                                   atol=1e-6)


def test_saved_model_round_trip(tmp_path):
    from msd_tf.export import export_saved_model, load_logits_fn
    from msd_tf.models import preact_resnet18

    model = preact_resnet18()
    x = np.random.default_rng(0).uniform(size=(3, 32, 32, 3)).astype(np.float32)
    export_saved_model(model, str(tmp_path / "sm"), metadata={"dataset": "cifar10"})
    logits_fn, meta = load_logits_fn(str(tmp_path / "sm"))
    assert meta["num_classes"] == 10 and meta["input_shape"] == [32, 32, 3]
    np.testing.assert_allclose(logits_fn(x).numpy(), model(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)

    def input_grad(fn):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(base.cross_entropy(fn(xt), tf.constant([1, 2, 3])))
        return tape.gradient(loss, xt).numpy()

    np.testing.assert_allclose(input_grad(logits_fn),
                               input_grad(lambda v: model(v, training=False)),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="not a SavedModel"):
        load_logits_fn(str(tmp_path))


def test_eat_samples_norms_by_running_error_and_updates_it():
    import keras

    from msd_tf.adversaries import _eat_choice

    # Sampling frequencies follow the running error (0.1 : 0.3 : 0.6).
    err = tf.constant([0.1, 0.3, 0.6])
    draws = [int(_eat_choice(err, base.fold(tf.constant([0, 0], tf.int64), i)))
             for i in range(3000)]
    freq = np.bincount(draws, minlength=3) / 3000
    np.testing.assert_allclose(freq, [0.1, 0.3, 0.6], atol=0.03)

    x, y = digits(20, seed=4)
    trainer, model = _trainer(tf.distribute.get_strategy(), Adversary("eat", THREATS))
    trainer.norm_error.assign([0.5, 0.5, 0.5])
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(10), epochs=1,
                       verbose=0).history
    err = trainer.norm_error.numpy()
    # Two steps: each moved the chosen norm's EMA (momentum 0.9) from 0.5 toward that
    # step's adversarial error e in [0, 1]; the other norms stayed at 0.5. The logged
    # choice fractions say which norms were used.
    chosen = np.array([logs[f"chose_{n}"][0] for n in ("linf", "l2", "l1")])
    assert chosen.sum() == pytest.approx(1.0)
    moved = np.abs(err - 0.5) > 1e-7
    assert np.all(moved <= (chosen > 0))
    assert np.all((err >= 0.405 - 1e-6) & (err <= 0.595 + 1e-6))  # <= 2 EMA steps
    del keras, model


def test_model_name_from_folder():
    from msd_tf.export import model_name

    assert model_name("runs/mnist/msd/saved_model") == "msd"
    assert model_name("runs/mnist/msd/saved_model/") == "msd"
    assert model_name("runs/mnist/msd") == "msd"
    assert model_name("saved_model") == "model"
