"""Mixed precision (--precision): the model computes in 16 bits, the attacks keep the
perturbation, projections, norms and losses in float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf import threats
from msd_tf.adversaries import make_adversary
from msd_tf.attacks import ATTACKS
from msd_tf.models import mnist_cnn
from msd_tf.training import AdversarialTrainer
from tests.attacks.helpers import digits, norms_of

BALLS = {t.norm: t.replace(steps=5, alpha=t.eps / 3)
         for t in threats.presets("mnist", phase="train")}


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize("name", ["pgd", "apgd_ce", "msd", "square", "sparse_rs"])
def test_attacks_stay_in_ball_and_box_under_a_16_bit_model(policy, name):
    keras.utils.set_random_seed(0)
    model = mnist_cnn()
    assert model.layers[0].compute_dtype != "float32"
    x, y = digits(8, seed=1)
    assert model(x).dtype == tf.float32  # the logits layer computes in float32
    attack = ATTACKS[name]
    budget = {"n_queries": 50} if attack.queries else {}
    for norm in (("linf",) if attack.union else attack.norms):
        target = tuple(BALLS.values()) if attack.union else BALLS[norm]
        x_adv = attack.fn(model, x, y, target, seed=0, **budget)
        assert x_adv.dtype == tf.float32
        x_adv = x_adv.numpy()
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        n = norms_of(x_adv, x)
        balls = BALLS.values() if attack.union else [BALLS[norm]]
        assert np.all(np.any([n[t.norm] <= t.eps * (1 + 1e-5) for t in balls], axis=0))


def _one_step(precision, adversary):
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        union = (threats.ThreatModel("linf", 0.3, 0.05, 3), threats.ThreatModel("l2", 2.0, 0.4, 3),
                 threats.ThreatModel("l1", 10.0, 2.0, 3, l1=threats.L1Step(k_range=(10, 10))))
        trainer = AdversarialTrainer(mnist_cnn(), make_adversary(adversary, union, msd_steps=3))
        trainer.compile(optimizer=keras.optimizers.SGD(0.05),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x, y = digits(32, seed=2)
        before = [w.numpy() for w in trainer.model.trainable_weights]
        logs = trainer.train_step((tf.constant(x), tf.constant(y)))
        after = [w.numpy().astype(np.float32) for w in trainer.model.trainable_weights]
        return trainer, before, after, {k: float(v) for k, v in logs.items()}
    finally:
        keras.mixed_precision.set_global_policy("float32")


# Measured on CPU (cosine of the whole update with float32's; bf16 / fp16): plain step
# 0.997 / 0.9998, MSD step 0.966 / 0.977 (the MSD examples differ a little, since the
# 16-bit forward pass ranks the candidates and signs tiny l_inf gradients differently).
MIN_COSINE = {"none": 0.99, "msd": 0.94}


@pytest.mark.parametrize("adversary", ["none", "msd"])
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_step_matches_float32(precision, adversary):
    # Same initial weights (float32 variables in both policies), same batch: the update
    # (lr * gradient, all weights as one vector) points where float32's does, has its
    # length within 10%, and the adversarial loss agrees to 0.1%.
    _, before, ref, ref_logs = _one_step("float32", adversary)
    trainer, before16, got, logs = _one_step(precision, adversary)
    for b, b16 in zip(before, before16):
        np.testing.assert_array_equal(b, b16)
    update = np.concatenate([(r - b).ravel() for b, r in zip(before, ref)])
    update16 = np.concatenate([(g - b).ravel() for b, g in zip(before, got)])
    cosine = update @ update16 / np.linalg.norm(update) / np.linalg.norm(update16)
    assert cosine >= MIN_COSINE[adversary]
    assert np.linalg.norm(update16) == pytest.approx(np.linalg.norm(update), rel=0.1)
    assert logs["adv_loss"] == pytest.approx(ref_logs["adv_loss"], rel=1e-3)
    if precision == "mixed_float16":  # Keras wraps the optimizer: dynamic loss scaling
        assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)


def test_precision_reaches_the_training_config():
    from msd_tf.config import TrainConfig

    assert TrainConfig(precision="mixed_bfloat16").precision == "mixed_bfloat16"
    with pytest.raises(ValueError, match="`precision`"):
        TrainConfig(precision="float64")


def test_a_skipped_mixed_float16_step_does_not_move_the_resumed_data_stream(monkeypatch):
    # Keras' LossScaleOptimizer skips a step with non-finite gradients without counting
    # it (measured here: iterations stays 0), so optimizer.iterations can lag the batches
    # a run consumed. A run resumed at epoch 2 of 5 steps each must read its data from
    # batch 10, whatever the optimizer's counter says (before: from batch 9).
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3))
    v = keras.Variable(np.ones(3, np.float32))
    opt.build([v])
    opt.apply([tf.constant([1.0, np.nan, 1.0])], [v])
    assert int(opt.iterations.numpy()) == 0 and np.all(v.numpy() == 1.0)

    import dataclasses

    from msd_tf import config as config_lib
    from msd_tf import data, experiment

    starts = []
    monkeypatch.setattr(data, "train_dataset", lambda *a, start_step, **k: starts.append(
        start_step) or "ds")

    class Trainer:
        def fit(self, ds, **kwargs):
            return type("H", (), {"history": {}})()

    opt.iterations.assign(9)  # one of the 10 steps of epochs 0-1 was skipped
    parts = experiment.Parts(model=None, adversary=None, optimizer=opt, trainer=Trainer(),
                             epoch=tf.Variable(2), checkpoint=tf.train.Checkpoint())
    inputs = experiment.Inputs(np.zeros((10, 28, 28, 1), np.float32), np.zeros(10, np.int32),
                               None, None, steps_per_epoch=5, train_sha256="")
    config = dataclasses.replace(config_lib.TrainConfig(), epochs=4, batch_size=2,
                                 output_dir="/nonexistent-unused", precision="mixed_float16")
    monkeypatch.setattr(experiment.checkpoints, "CheckpointWriter", lambda *a, **k: None)
    experiment.fit(config, tf.distribute.get_strategy(), parts, inputs, start=2)
    assert starts == [10]


def test_a_mixed_precision_model_is_exported_in_float32():
    # Evaluating the 16-bit forward pass would round the input gradients the attacks
    # follow; the export is the float32 model with the trained weights.
    import dataclasses

    from msd_tf import experiment
    from msd_tf.config import TrainConfig

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = mnist_cnn()
        config = dataclasses.replace(TrainConfig(), precision="mixed_bfloat16")
        served = experiment.float32_copy(config, model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.layers[0].compute_dtype == "bfloat16"
    assert {layer.compute_dtype for layer in served.layers} == {"float32"}
    reference = mnist_cnn()  # built under float32 here, the same weights
    reference.set_weights(model.get_weights())
    x, _ = digits(8, seed=3)
    np.testing.assert_array_equal(served(x).numpy(), reference(x).numpy())
    # bf16 rounds the forward pass: the 16-bit model's logits differ from these
    assert np.abs(model(x).numpy() - served(x).numpy()).max() > 1e-4
    assert experiment.float32_copy(TrainConfig(), reference) is reference
