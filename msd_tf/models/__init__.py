"""Model registry: `build_model(name, input_shape, num_classes)` -> Keras model (logits)."""

from msd_tf.models.mnist_cnn import mnist_cnn
from msd_tf.models.preact_resnet import preact_resnet18
from msd_tf.models.wide_resnet import wide_resnet

MODELS = {
    "mnist_cnn": mnist_cnn,
    "preact_resnet18": preact_resnet18,
    "wide_resnet": wide_resnet,
}


def build_model(name: str, input_shape, num_classes: int = 10):
    """Builds a registered architecture. Raises ValueError naming unknown `name`."""
    if name not in MODELS:
        raise ValueError(f"Argument `name` must be one of {sorted(MODELS)}. Received: {name!r}")
    return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)


__all__ = ["MODELS", "build_model", "mnist_cnn", "preact_resnet18", "wide_resnet"]
