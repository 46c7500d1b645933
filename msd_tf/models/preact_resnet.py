"""Pre-activation ResNet-18 for CIFAR-10 (He et al. 2016, arXiv:1603.05027).

The CIFAR-10 per-channel normalization is the model's first layer, so attacks work
in pixel space ([0, 1]).
"""

import keras

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def normalization(mean=CIFAR10_MEAN, std=CIFAR10_STD) -> keras.layers.Layer:
    """(x - mean) / std per channel, as a layer (so it is part of the SavedModel)."""
    return keras.layers.Normalization(mean=list(mean), variance=[s * s for s in std],
                                      name="normalize")


def preact_block(x, filters: int, stride: int, name: str):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with a 1x1 projection shortcut when the shape changes."""
    out = keras.layers.BatchNormalization(name=f"{name}_bn1")(x)
    out = keras.layers.ReLU()(out)
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, stride, use_bias=False,
                                       name=f"{name}_shortcut")(out)
    out = keras.layers.Conv2D(filters, 3, stride, padding="same", use_bias=False,
                              name=f"{name}_conv1")(out)
    out = keras.layers.BatchNormalization(name=f"{name}_bn2")(out)
    out = keras.layers.ReLU()(out)
    out = keras.layers.Conv2D(filters, 3, 1, padding="same", use_bias=False,
                              name=f"{name}_conv2")(out)
    return keras.layers.Add()([out, shortcut])


def preact_resnet18(input_shape=(32, 32, 3), num_classes: int = 10,
                    normalize: bool = True) -> keras.Model:
    """PreAct ResNet-18: 4 stages x 2 blocks, widths 64-128-256-512 (11,171,146 params)."""
    inputs = keras.Input(input_shape)
    x = normalization()(inputs) if normalize else inputs
    x = keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem")(x)
    for stage, (filters, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
        for block in range(2):
            x = preact_block(x, filters, stride if block == 0 else 1, f"s{stage}b{block}")
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # float32 logits under a mixed-precision policy (attacks keep losses float32).
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="preact_resnet18")
