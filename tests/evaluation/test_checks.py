import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.evaluation import checks, corruptions
from tests.attacks.helpers import digits, small_cnn


def test_no_warning_for_a_plain_logits_model():
    model = small_cnn(seed=0)
    x, _ = digits(16)
    y = model(x).numpy().argmax(1)
    assert checks.sanity_warnings(lambda v: model(v, training=False), x, y) == []


def test_probability_outputs_are_flagged():
    model = small_cnn(seed=0)
    x, _ = digits(16)
    y = model(x).numpy().argmax(1)
    warnings = checks.sanity_warnings(lambda v: tf.nn.softmax(model(v)), x, y)
    assert any("probabilities" in w for w in warnings)


def test_zero_gradients_are_flagged():
    model = small_cnn(seed=0)
    x, _ = digits(16)
    y = model(x).numpy().argmax(1)
    # Quantizing the input kills the gradient (a classic masking defence).
    warnings = checks.sanity_warnings(lambda v: model(tf.stop_gradient(tf.round(v))), x, y)
    assert any("gradients are exactly zero" in w for w in warnings)


def test_nondeterministic_predictions_are_flagged():
    keras.utils.set_random_seed(0)
    dropout = keras.layers.Dropout(0.9)
    model = small_cnn(seed=0)
    x, _ = digits(32)
    y = model(x).numpy().argmax(1)
    warnings = checks.sanity_warnings(lambda v: model(dropout(v, training=True)), x, y)
    assert any("not deterministic" in w for w in warnings)


def test_lp_norms_by_hand():
    x = np.zeros((2, 3), np.float32)
    x_adv = np.array([[3, -4, 0], [1, 1, 1]], np.float32)
    np.testing.assert_allclose(checks.lp_norms(x_adv, x, "linf"), [4, 1])
    np.testing.assert_allclose(checks.lp_norms(x_adv, x, "l2"), [5, np.sqrt(3)])
    np.testing.assert_allclose(checks.lp_norms(x_adv, x, "l1"), [7, 3])


def test_cifar10_c_download_failure_says_what_is_needed(monkeypatch):
    import tensorflow_datasets as tfds

    from msd_tf.data import DataError

    def fail(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tfds, "load", fail)
    with pytest.raises(DataError, match="cifar10_corrupted/fog_3.*network"):
        corruptions.load_corrupted("fog", 3)
