"""The MNIST CNN of the paper (appendix C.2): 3,274,634 parameters."""

import keras


def mnist_cnn(input_shape=(28, 28, 1), num_classes: int = 10) -> keras.Model:
    """conv 5x5x32 (same) - ReLU - maxpool 2 - conv 5x5x64 (same) - ReLU - maxpool 2 -
    dense 1024 - ReLU - dense `num_classes`. Input: images in [0, 1]; output: logits."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(1024, activation="relu"),
            # float32 logits under a mixed-precision policy (attacks keep losses float32).
            keras.layers.Dense(num_classes, dtype="float32"),
        ],
        name="mnist_cnn",
    )
