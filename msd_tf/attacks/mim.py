"""Momentum iterative method (MIM) in the l_inf ball.

References:
  Dong et al., "Boosting adversarial attacks with momentum", CVPR 2018, arXiv:1710.06081.
"""

import tensorflow as tf

from msd_tf import balls, shapes
from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import cross_entropy
from msd_tf.balls import projected_step, random_in_ball
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import ThreatModel


def mim_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor, *,
              decay: float = 1.0, training: bool = False, loss_fn=cross_entropy,
              stop_when_fooled: bool = False, compact: bool = False) -> base.AttackOutput:
    """Graph-level MIM: g <- decay * g + grad / ||grad||_1; delta <- clip(delta + alpha sign(g)).

    Runs `threat.restarts` times (later runs from a random point of the ball) and keeps,
    per example, the better run (fooling first, then loss), like `pgd_delta`.
    `threat.norm` must be "linf". `stop_when_fooled`: freeze an example at the first
    iterate that fools the model (what an evaluation wants: the attack can then only
    succeed more often), and stop once all are; `compact`: then compute only the
    examples not yet fooled (see `pgd_delta`).
    """
    if threat.norm != "linf":
        raise ValueError(f"MIM attacks the l_inf ball. Received norm={threat.norm!r}")
    batch = tf.shape(x)[0]
    y_int = tf.cast(y, tf.int32)

    def one_run(r):
        start = random_in_ball(x, threat, fold(fold(seed, r), INIT_STREAM))
        delta0 = tf.where(tf.logical_or(r > 0, threat.random_start), start, tf.zeros_like(x))

        def body(t, delta, momentum, live):
            _, logits, grad = base.loss_and_grad_on(
                model, x, delta, y, live, compact=compact and stop_when_fooled,
                training=training, loss_fn=loss_fn)
            l1 = shapes.expand_to_rank(balls.per_example_norm(grad, "l1"), grad)
            momentum = decay * momentum + grad / tf.maximum(l1, 1e-12)
            candidate = projected_step(x, delta, momentum, threat, seed)
            if not stop_when_fooled:
                return t + 1, candidate, momentum, live
            correct = (tf.argmax(logits, axis=1, output_type=tf.int32) == y_int) & live
            return (t + 1, tf.where(base.broadcast_mask(correct, x), candidate, delta),
                    momentum, correct)

        _, delta, _, _ = tf.while_loop(
            lambda t, d, m, live: (t < threat.steps) & tf.reduce_any(live), body,
            (tf.constant(0), delta0, tf.zeros_like(x), tf.ones([batch], tf.bool)))
        return delta

    delta, loss = base.best_of_runs(one_run, threat.restarts, x, y, model, training, loss_fn)
    return base.AttackOutput(delta=delta, loss=loss, counts=base.one_norm_counts(x))


def mim(model, x, y, threat: ThreatModel, *, seed=0, decay: float = 1.0,
        training: bool = False, jit_compile: bool = False,
        loss_fn=cross_entropy, stop_when_fooled: bool = True) -> tf.Tensor:
    """MIM attack; returns adversarial images in [0, 1] within the l_inf ball. An example
    stops at the first iterate that fools the model (`stop_when_fooled`; False: every
    example takes all `threat.steps` steps and the last iterate counts)."""
    return compiled.run(model, x, y, mim_delta, threat, seed=seed,
                        jit_compile=jit_compile, decay=decay, training=training, loss_fn=loss_fn,
                        stop_when_fooled=stop_when_fooled,
                        compact=stop_when_fooled and not (jit_compile or training))
