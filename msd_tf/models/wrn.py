"""Wide ResNet (Zagoruyko and Komodakis 2016, arXiv:1605.07146) for the Table 6 comparison.

`blocks_per_stage=5, width=10` is WRN-34-10 (depth = 6 * 5 + 4, counting as TRADES does),
the model of Tramer and Boneh (2019) and of TRADES: 46,160,474 trainable parameters.
"""

import keras

from msd_tf.models.preact_resnet import normalization, preact_block


def wide_resnet(input_shape=(32, 32, 3), num_classes: int = 10, blocks_per_stage: int = 5,
                width: int = 10, normalize: bool = True) -> keras.Model:
    """Pre-activation wide ResNet: stem 16 channels, stages 16w-32w-64w."""
    inputs = keras.Input(input_shape)
    x = normalization()(inputs) if normalize else inputs
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(x)
    for stage, (filters, stride) in enumerate(((16 * width, 1), (32 * width, 2),
                                               (64 * width, 2))):
        for block in range(blocks_per_stage):
            x = preact_block(x, filters, stride if block == 0 else 1, f"s{stage}b{block}")
    x = keras.layers.BatchNormalization(name="final_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=f"wrn_{6 * blocks_per_stage + 4}_{width}")
