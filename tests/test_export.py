import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks.losses import cross_entropy
from msd_tf.export import ModelLoadError, export_saved_model, load_logits_fn, load_model, model_name
from tests.conftest import SHARED_MNIST


def test_saved_model_round_trip(tmp_path):
    from msd_tf import fingerprints
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
            loss = tf.reduce_sum(cross_entropy(fn(xt), tf.constant([1, 2, 3])))
        return tape.gradient(loss, xt).numpy()

    np.testing.assert_allclose(input_grad(logits_fn),
                               input_grad(lambda v: model(v, training=False)),
                               rtol=1e-4, atol=1e-6)
    loaded = load_model(str(tmp_path / "sm"))
    assert loaded.fingerprint == fingerprints.of_saved_model(str(tmp_path / "sm"))
    assert sorted(tuple(v.shape) for v in loaded.variables) == \
        sorted(tuple(w.shape) for w in model.weights)
    with pytest.raises(ModelLoadError, match="neither a SavedModel"):
        load_model(str(tmp_path))
    with pytest.raises(ValueError, match="not a SavedModel"):
        load_logits_fn(str(tmp_path))


def test_model_name_from_folder():
    assert model_name("runs/mnist/msd/saved_model") == "msd"
    assert model_name("runs/mnist/msd/saved_model/") == "msd"
    assert model_name("runs/mnist/msd") == "msd"
    assert model_name("saved_model") == "model"


def test_the_same_weights_saved_differently_meet_the_same_random_starts(tmp_path):
    # One model's weights in two SavedModels, the second with another graph (inside a
    # Sequential): other files, so another cache key, but the attack seeds derive from
    # the weights, so randomized attacks draw the same starts and give identical numbers
    # (before: seeds from the files, e.g. 30.0 against 29.5 union for identical weights).
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    from msd_tf import data, fingerprints
    from msd_tf.evaluation import pipeline, runner
    from msd_tf.evaluation.records import EvalConfig
    from tests.attacks.helpers import small_cnn

    model = small_cnn(seed=7)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*data.load_arrays("mnist", "test[100:1100]", str(SHARED_MNIST)), batch_size=100,
              epochs=1, verbose=0)
    first = export_saved_model(model, str(tmp_path / "first" / "saved_model"))
    wrapped = keras.Sequential([keras.Input((28, 28, 1)), model])
    other = export_saved_model(wrapped, str(tmp_path / "other" / "saved_model"))
    a, b = load_model(first), load_model(other)
    assert a.fingerprint != b.fingerprint
    assert a.weights_fingerprint == b.weights_fingerprint
    x = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    np.testing.assert_array_equal(a.logits_fn(x).numpy(), b.logits_fn(x).numpy())
    specs = pipeline.build_suite("mnist", ["apgd_ce_linf", "apgd_ce_l1"], restarts=1,
                                 suite_name="strong", budget="fast", eps={})
    out = {}
    for name, path in (("a", first), ("b", other)):
        pipeline.evaluate([path], EvalConfig(
            "mnist", specs, data_dir=str(SHARED_MNIST), split="test[:24]", num_examples=24,
            output_dir=str(tmp_path / name), batch_size=12, verbose=False, draw_curves=False))
        out[name] = np.load(next((tmp_path / name).glob("per_example_*.npz")))
        prov = json.loads((tmp_path / name / "results.json").read_text())["provenance"]["models"]
        assert next(iter(prov.values()))["weights_sha256"] == a.weights_fingerprint
    assert sorted(out["a"].files) == sorted(out["b"].files)
    for key in out["a"].files:
        np.testing.assert_array_equal(out["a"][key], out["b"][key], err_msg=key)
    # The randomized attacks do depend on the seed: other weights, other starts.
    assert runner.attack_seed(0, a.weights_fingerprint, "apgd_ce_l1", 0) != \
        runner.attack_seed(0, fingerprints.of_json("other"), "apgd_ce_l1", 0)
