import numpy as np
import pytest

from msd_tf.models import build_model, mnist_cnn, preact_resnet18, wide_resnet


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _conv(k, cin, cout, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def test_mnist_cnn_matches_hand_count():
    model = mnist_cnn()
    # conv 5x5x1x32 + b, conv 5x5x32x64 + b, dense 7*7*64 -> 1024 + b, dense 1024 -> 10 + b
    want = _conv(5, 1, 32, True) + _conv(5, 32, 64, True) + (7 * 7 * 64 + 1) * 1024 \
        + (1024 + 1) * 10
    assert want == 3_274_634 == model.count_params() == _trainable(model)
    assert model.output_shape == (None, 10)


def _preact_resnet_count(widths, blocks, stem_in, stem_out, classes):
    """Trainable weights of a pre-activation ResNet of 3x3 basic blocks, by hand."""
    total = _conv(3, stem_in, stem_out)
    cin = stem_out
    for stage, w in enumerate(widths):
        for b in range(blocks):
            total += 2 * cin  # bn1
            total += _conv(3, cin, w) + 2 * w + _conv(3, w, w)  # conv1, bn2, conv2
            if cin != w or (b == 0 and stage > 0):
                total += _conv(1, cin, w)  # projection shortcut
            cin = w
    return total + 2 * cin + (cin + 1) * classes  # final bn, dense


def test_preact_resnet18_matches_hand_count():
    model = preact_resnet18()
    assert _trainable(model) == _preact_resnet_count((64, 128, 256, 512), 2, 3, 64, 10)
    assert model.output_shape == (None, 10)


def test_wide_resnet_34_10_matches_hand_count_and_published_size():
    model = wide_resnet(blocks_per_stage=5, width=10)
    want = _preact_resnet_count((160, 320, 640), 5, 3, 16, 10)
    assert _trainable(model) == want == 46_160_474  # the size TRADES reports for WRN-34-10


def test_cifar_normalization_is_inside_the_model():
    model = preact_resnet18()
    norm = model.get_layer("normalize")
    x = np.full((1, 32, 32, 3), 0.5, np.float32)
    out = norm(x).numpy()[0, 0, 0]
    np.testing.assert_allclose(out, (0.5 - np.array([0.4914, 0.4822, 0.4465]))
                               / np.array([0.2471, 0.2435, 0.2616]), rtol=1e-5)


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="resnet50"):
        build_model("resnet50", (32, 32, 3))


def test_builders_stay_functions_after_their_modules_are_imported():
    # The package loads builders lazily; importing a module of the package first must not
    # bind the module where the builder's name is expected.
    import importlib

    import msd_tf.models as models

    for module in ("mnist", "preact_resnet", "wrn"):
        importlib.import_module(f"msd_tf.models.{module}")
    for name in models.MODELS:
        assert callable(getattr(models, name)), name
    with pytest.raises(ValueError, match="must be one of"):
        build_model("lenet", (28, 28, 1))
