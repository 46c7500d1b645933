"""Where an evaluation's time goes: forward and backward passes per attack.

`CountingLogits` wraps a model's logits function and counts (`compute.counted`, as
training counts its passes), in TensorFlow variables
(so the counts are right inside compiled attacks, `tf.while_loop`s and foolbox's eager
code alike), the examples that went through a forward pass and those a gradient was
taken through. `runner.run_suite` gives every attack its own counts, seconds and the
number of examples it attacked; `evaluate` writes them to results.json ("profile") and
prints them (docs/PERFORMANCE.md: where an evaluation's time goes).
"""

import tensorflow as tf

from msd_tf.attacks.base import logits_of
from msd_tf.compute import counted


class CountingLogits:
    """`logits_fn` (a callable or Keras model, images -> logits, called with
    training=False) that counts forward and backward example-passes.

    `forward` and `backward` are int64 `tf.Variable`s; `counts()` reads both. A
    backward pass is counted per example each time a gradient flows into the logits
    (DeepFool's 9 class gradients per step count 9 times)."""

    def __init__(self, logits_fn):
        self._fn = logits_fn
        self.forward = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.backward = tf.Variable(0, dtype=tf.int64, trainable=False)

    def __call__(self, x):
        return counted(logits_of(self._fn, x, False),
                       lambda n: self.forward.assign_add(tf.cast(n, tf.int64)),
                       lambda n: self.backward.assign_add(tf.cast(n, tf.int64)))

    def counts(self) -> tuple[int, int]:
        """(forward, backward) example-passes so far."""
        return int(self.forward.numpy()), int(self.backward.numpy())


def table(profile: dict) -> list[str]:
    """Markdown lines of one model's profile (attack -> {"seconds", "attacked",
    "forward", "backward", "cached"}), with a total row."""
    lines = ["| attack | seconds | examples attacked | forward passes | backward passes |",
             "|---|---|---|---|---|"]
    total = {"seconds": 0.0, "forward": 0, "backward": 0}
    for name, p in profile.items():
        cached = " (cached)" if p.get("cached") else ""
        lines.append(f"| {name}{cached} | {p['seconds']:.1f} | {p['attacked']} | "
                     f"{p['forward']} | {p['backward']} |")
        for k in total:
            total[k] += p[k]
    lines.append(f"| total | {total['seconds']:.1f} | | {total['forward']} | "
                 f"{total['backward']} |")
    return lines
