"""Optimizers by name, with the paper's piecewise-linear learning rate."""

import keras

from msd_tf.schedules import PiecewiseLinear

OPTIMIZERS = {
    "adam": lambda lr, momentum: keras.optimizers.Adam(lr),  # MNIST (appendix C.2)
    "sgd": lambda lr, momentum: keras.optimizers.SGD(lr, momentum=momentum),  # CIFAR-10
}


def make_optimizer(name: str, *, lr_epochs, lr_values, steps_per_epoch: int,
                   momentum: float = 0.9) -> keras.optimizers.Optimizer:
    """The optimizer registered as `name`, its learning rate linear between the
    (`lr_epochs`, `lr_values`) knots; a ValueError lists the known names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}.")
    return OPTIMIZERS[name](PiecewiseLinear(lr_epochs, lr_values, steps_per_epoch), momentum)
