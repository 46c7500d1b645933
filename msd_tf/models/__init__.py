"""Model registry: `build_model(name, input_shape, num_classes)` -> Keras model (logits).

Importing this package does not import TensorFlow (the training flags list `MODELS`);
each architecture's module is loaded when it is built or named.
"""

MODELS = ("mnist_cnn", "preact_resnet18", "wide_resnet")

__all__ = ["MODELS", "build_model", *MODELS]


def __getattr__(name: str):
    """The builder `name`, imported on first access (no module of this package is named
    like a builder: importing it would bind the module to the builder's name)."""
    if name not in MODELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from msd_tf.models import mnist, preact_resnet, wrn

    builder = getattr({"mnist_cnn": mnist, "preact_resnet18": preact_resnet,
                       "wide_resnet": wrn}[name], name)
    globals()[name] = builder
    return builder


def __dir__():
    return sorted(set(globals()) | set(__all__))


def build_model(name: str, input_shape, num_classes: int = 10):
    """Builds a registered architecture. Raises ValueError naming unknown `name`."""
    if name not in MODELS:
        raise ValueError(f"Argument `name` must be one of {sorted(MODELS)}. Received: {name!r}")
    return __getattr__(name)(input_shape=tuple(input_shape), num_classes=num_classes)
