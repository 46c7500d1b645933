"""Machine-independent training compute: forward and backward example-passes of the
model, counted in the graph where they happen (attack iterations stop early, so the
count is a measurement, not a formula).

`Counter.wrap(model)` gives the callable the trainer hands to its adversary: every call
adds the batch size to `forward`, and every backward pass through its logits (an
attack's input gradient, the weight update) adds it to `backward`, through an identity
with a custom gradient on the logits (`counted`, which the evaluation's profile uses
too, `evaluation/profiling.py`). `Counter.count(logits)` counts the logits of
another model (RAMP's natural copy). Both are Keras `Sum` metrics of the trainer: reset
every epoch, summed over replicas, written per epoch to history.csv
(`forward_examples`, `backward_examples`); a run's total is the sum of its history rows
(`total`), which resumption keeps consistent (rows of epochs not checkpointed are
dropped and trained again).
"""

import csv

import keras
import tensorflow as tf


def counted(logits: tf.Tensor, on_forward, on_backward) -> tf.Tensor:
    """`logits` unchanged: calls `on_forward(n)` now and `on_backward(n)` in every
    backward pass through them, n their batch size (int32). Both callbacks update state
    (a variable or a metric); a returned op runs before the gradient leaves."""
    n = tf.shape(logits)[0]

    @tf.custom_gradient
    def identity(t):
        def grad(dy):
            done = on_backward(n)  # a stateful op: tf.function runs it
            with tf.control_dependencies([done] if done is not None else []):
                return tf.identity(dy)
        return tf.identity(t), grad

    on_forward(n)
    return identity(logits)


class Counter:
    """The two counting metrics (create it where the trainer creates its metrics)."""

    def __init__(self):
        self.forward = keras.metrics.Sum(name="forward_examples", dtype="float64")
        self.backward = keras.metrics.Sum(name="backward_examples", dtype="float64")

    def count(self, logits: tf.Tensor) -> tf.Tensor:
        """`logits` unchanged, with its forward pass and every backward pass through it
        counted (examples: its batch size)."""
        as_float = lambda n: tf.cast(n, tf.float64)  # noqa: E731
        return counted(logits, lambda n: self.forward.update_state(as_float(n)),
                       lambda n: self.backward.update_state(as_float(n)))

    def wrap(self, model) -> "CountedModel":
        return CountedModel(model, self)


def total(history_csv: str) -> dict:
    """A run's compute from its history.csv: {"forward_examples", "backward_examples",
    "passes"} summed over its epochs (zeros if the columns are absent)."""
    out = {"forward_examples": 0, "backward_examples": 0}
    with open(history_csv, newline="") as f:
        for row in csv.DictReader(f):
            for k in out:
                out[k] += int(round(float(row.get(k) or 0)))
    out["passes"] = out["forward_examples"] + out["backward_examples"]
    return out


class CountedModel:
    """`model` with its passes counted: call it as the model (`training=` included)."""

    takes_training = True  # attacks.base.logits_of passes `training=`

    def __init__(self, model: keras.Model, counter: Counter):
        self.model, self.counter = model, counter

    def __call__(self, x, training=False):
        return self.counter.count(self.model(x, training=training))
