"""--ema: the weights' exponential moving average is what a run exports, its checkpoints
hold both the last weights and the average, and a resumed run continues both bit-exactly."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf import experiment
from msd_tf.config import TrainConfig, experiment_of
from msd_tf.export import load_logits_fn
from msd_tf.models import mnist_cnn

M = 0.6  # far from 0 and 1, so that a wrong weighting shows


def _config(tmp_path, mnist_dir, name, **kw):
    # One step per epoch and every checkpoint kept: checkpoint n holds the weights after
    # step n, the sequence the average is computed from below.
    return TrainConfig(**{**dict(
        adversary="none", data_dir=str(mnist_dir), train_split="test[1000:1040]",
        eval_split="test[:20]", batch_size=20, steps_per_epoch=1, epochs=3,
        lr_epochs=(0, 3), lr_values=(1e-2, 1e-2), keep_checkpoints=0,
        output_dir=str(tmp_path / name)), **kw})


def _train(config):
    keras.utils.set_random_seed(config.seed)  # as the entry point does
    return experiment.train(config, log=lambda m: None, verbose=0)


def _weights(path):
    model = mnist_cnn()
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return [v.numpy() for v in model.trainable_variables]


def test_ema_exports_the_average_of_the_weights_after_each_step(tmp_path, mnist_dir,
                                                               monkeypatch):
    plain = _config(tmp_path, mnist_dir, "plain")
    _train(plain)
    steps = [_weights(str(tmp_path / "plain" / "checkpoints" / f"ckpt-{n}")) for n in (1, 2, 3)]
    # The reference: the first step copies the weights, then a = M a + (1 - M) w.
    avg = steps[0]
    for w in steps[1:]:
        avg = [M * a + (1 - M) * b for a, b in zip(avg, w)]

    ema = _config(tmp_path, mnist_dir, "ema", ema=M)
    summary = _train(ema)
    # The average does not steer training: the last weights are the plain run's.
    last = _weights(str(tmp_path / "ema" / "checkpoints" / "ckpt-3"))
    for a, b in zip(last, steps[-1]):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(avg, steps[-1]))  # can fail
    # The export is the average.
    model = mnist_cnn()
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    for v, a in zip(model.trainable_variables, avg):
        v.assign(a)
    logits = load_logits_fn(str(tmp_path / "ema" / "saved_model"))[0](x).numpy()
    np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-4, atol=1e-5)
    assert summary["config"]["ema"] == M
    # A finished run started again restores the last weights: it reports on the average
    # too (the weights export_and_report sees).
    seen = []
    report = experiment.export_and_report
    monkeypatch.setattr(experiment, "export_and_report", lambda config, parts, *a, **k: (
        seen.append([v.numpy() for v in parts.model.trainable_variables]),
        report(config, parts, *a, **k))[1])
    _train(ema)
    for a, b in zip(seen[0], avg):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    monkeypatch.undo()

    # Stopped after 2 epochs and resumed to 3: the same checkpoint, average included.
    part = _config(tmp_path, mnist_dir, "part", ema=M, epochs=2)
    _train(part)
    _train(dataclasses.replace(part, epochs=3))
    a, b = (tf.train.load_checkpoint(str(tmp_path / n / "checkpoints" / "ckpt-3"))
            for n in ("ema", "part"))
    names = [k for k in a.get_variable_to_shape_map() if "save_counter" not in k
             and "OBJECT_GRAPH" not in k]
    # The checkpoint holds the average (it is what makes the resumption exact).
    for ref in avg:
        assert any(np.allclose(a.get_tensor(k), ref, rtol=1e-5, atol=1e-7)
                   for k in names if a.get_variable_to_shape_map()[k] == list(ref.shape))
    for k in names:
        np.testing.assert_array_equal(a.get_tensor(k), b.get_tensor(k), err_msg=k)
    # Resumed, the export is the average again (not the restored last weights).
    np.testing.assert_array_equal(
        load_logits_fn(str(tmp_path / "part" / "saved_model"))[0](x).numpy(), logits)


@pytest.mark.parametrize("field,value", [("ema", 0.99), ("train_attack", "apgd"), ("shift", 2)])
def test_later_options_are_part_of_the_experiment_only_when_set(field, value):
    old = json.loads(TrainConfig().to_json())
    old.pop(field)  # a config.json written before the option existed
    expected = TrainConfig().experiment("")
    del expected["train_data_sha256"]
    assert experiment_of(old) == expected  # an older run resumes
    assert TrainConfig(**{field: value}).experiment("")[field] == value
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)
    with pytest.raises(ValueError, match="shift"):
        TrainConfig(shift=-1)
