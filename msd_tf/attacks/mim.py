"""Momentum iterative method (MIM) in the l_inf ball.

References:
  Dong et al., "Boosting adversarial attacks with momentum", CVPR 2018, arXiv:1710.06081.
"""

import tensorflow as tf

from msd_tf import balls, shapes
from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import cross_entropy
from msd_tf.balls import projected_step, random_in_ball
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

    def update(t, delta, grad, momentum, run_seed):
        l1 = shapes.expand_to_rank(balls.per_example_norm(grad, "l1"), grad)
        momentum = decay * momentum + grad / tf.maximum(l1, 1e-12)
        return projected_step(x, delta, momentum, threat, seed), momentum

    return base.ascend(model, x, y, threat, seed, update,
                       start=lambda start_seed: random_in_ball(x, threat, start_seed),
                       training=training, loss_fn=loss_fn, stop_when_fooled=stop_when_fooled,
                       compact=compact, state=tf.zeros_like(x))


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
