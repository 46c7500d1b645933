"""Piecewise-linear learning-rate schedules in fractional epochs (appendix C.2)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="msd_tf")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear interpolation between (epoch, value) knots, evaluated every step.

    The position is `step / steps_per_epoch` in fractional epochs; before the first
    knot and after the last the end values hold. Safe inside `tf.function`.

    Example:
      >>> lr = PiecewiseLinear((0, 6, 15), (0, 1e-3, 0), steps_per_epoch=600)
    """

    def __init__(self, epochs, values, steps_per_epoch: int):
        epochs, values = [float(e) for e in epochs], [float(v) for v in values]
        if len(epochs) != len(values) or len(epochs) < 2:
            raise ValueError(f"Schedule needs >= 2 knots with one value each. Received "
                             f"epochs={epochs}, values={values}")
        if any(b <= a for a, b in zip(epochs, epochs[1:])):
            raise ValueError(f"Schedule epochs must increase strictly. Received {epochs}")
        if steps_per_epoch < 1:
            raise ValueError(f"Argument `steps_per_epoch` must be >= 1. Received {steps_per_epoch}")
        self.epochs, self.values, self.steps_per_epoch = epochs, values, int(steps_per_epoch)

    def __call__(self, step):
        e = tf.cast(step, tf.float32) / float(self.steps_per_epoch)
        xs = tf.constant(self.epochs, tf.float32)
        ys = tf.constant(self.values, tf.float32)
        i = tf.clip_by_value(tf.searchsorted(xs, e[None], side="right")[0] - 1,
                             0, len(self.epochs) - 2)
        x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
        t = tf.clip_by_value((e - x0) / (x1 - x0), 0.0, 1.0)
        return y0 + t * (y1 - y0)

    def get_config(self):
        return {"epochs": self.epochs, "values": self.values,
                "steps_per_epoch": self.steps_per_epoch}
