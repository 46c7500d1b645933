import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks.losses import cross_entropy
from msd_tf.export import ModelLoadError, export_saved_model, load_logits_fn, load_model, model_name


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
