"""Optimizers by name, with the paper's piecewise-linear learning rate.

Importing this module does not import TensorFlow (the training flags list `OPTIMIZERS`);
`make_optimizer` does.
"""


def _adam(lr, momentum, **ema):  # MNIST (appendix C.2)
    import keras

    return keras.optimizers.Adam(lr, **ema)


def _sgd(lr, momentum, **ema):  # CIFAR-10
    import keras

    return keras.optimizers.SGD(lr, momentum=momentum, **ema)


OPTIMIZERS = {"adam": _adam, "sgd": _sgd}


def make_optimizer(name: str, *, lr_epochs, lr_values, steps_per_epoch: int,
                   momentum: float = 0.9, ema: float = 0.0):
    """The optimizer registered as `name` (a `keras.optimizers.Optimizer`), its learning
    rate linear between the (`lr_epochs`, `lr_values`) knots; a ValueError lists the
    known names.

    `ema` > 0: the optimizer also keeps an exponential moving average of the weights
    (Keras' `use_ema`: after every step average = ema * average + (1 - ema) * weights,
    the first step copying them), which `finalize_variable_values` writes into the model.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}.")
    if not 0 <= ema < 1:
        raise ValueError(f"`ema` must be in [0, 1) (0: no average). Received: ema={ema}")
    from msd_tf.schedules import PiecewiseLinear

    extra = {"use_ema": True, "ema_momentum": ema} if ema else {}
    return OPTIMIZERS[name](PiecewiseLinear(lr_epochs, lr_values, steps_per_epoch), momentum,
                            **extra)
