"""Projected gradient descent in one l_p ball (PAPER_NOTES section 4).

References:
  Madry et al., "Towards deep learning models resistant to adversarial attacks",
  ICLR 2018, arXiv:1706.06083; l_1 top-k step: Maini, Wong, Kolter 2020,
  arXiv:1909.04068, appendix A.
"""

import tensorflow as tf

from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import cross_entropy
from msd_tf.balls import projected_step, random_in_ball
from msd_tf.seeding import fold
from msd_tf.threats import ThreatModel


def pgd_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor,
              *, training: bool = False, loss_fn=cross_entropy,
              stop_when_fooled: bool = True, compact: bool = False) -> base.AttackOutput:
    """Graph-level PGD: `threat.restarts` runs of `threat.steps` iterations.

    Each iteration takes one steepest-ascent step of `threat.norm` and projects onto
    ball and box. As in the reference code, an example the model already
    misclassifies stops moving (`stop_when_fooled`), and a run stops early once every
    example is fooled (which changes no result). Across runs an example keeps the
    better delta: fooling beats not fooling, otherwise the higher loss.

    Args:
      model: a Keras model or callable mapping images in [0, 1] to logits.
      x: `[B, ...]` images in [0, 1]; y: `[B]` int labels.
      threat: the ball and PGD settings.
      seed: `[2]` int64 stateless seed (see `as_seed`).
      training: passed to the model (False: BatchNorm uses moving statistics and is
        not updated by the attack).
      loss_fn: per-example loss `(logits, y) -> [B]` to ascend.
      stop_when_fooled: freeze examples that are already misclassified.
      compact: with `stop_when_fooled`, compute each iteration's forward and backward
        pass on the examples still correctly classified only (gathered; the same
        result for less work; not under XLA or with training=True, see
        `base.loss_and_grad_where`).

    Returns:
      `base.AttackOutput`; `loss` is the loss at the returned delta.
    """
    return base.ascend(
        model, x, y, threat, seed,
        lambda t, delta, grad, state, run_seed: (
            projected_step(x, delta, grad, threat, fold(run_seed, t)), state),
        start=lambda start_seed: random_in_ball(x, threat, start_seed), training=training,
        loss_fn=loss_fn, stop_when_fooled=stop_when_fooled, compact=compact)


def pgd(model, x, y, threat: ThreatModel, *, seed=0, training: bool = False,
        jit_compile: bool = False, loss_fn=cross_entropy) -> tf.Tensor:
    """PGD in one l_p ball; returns adversarial images `x + delta`.

    Compiled once per model, threat and input shape (`tf.function`, optionally
    XLA); deterministic for a given `seed`.

    Args:
      model: Keras model or callable, images in [0, 1] -> logits.
      x: `[B, ...]` float images in [0, 1]; y: `[B]` int labels.
      threat: a `ThreatModel`.
      seed: int or `[2]` int tensor.
      training: see `pgd_delta`.
      jit_compile: compile with XLA.
      loss_fn: per-example loss to ascend.

    Returns:
      `[B, ...]` adversarial images in [0, 1] with `||x_adv - x||_p <= eps`.

    Example:
      >>> x_adv = pgd(model, x, y, threats.preset("mnist", "l2"), seed=0)
    """
    return compiled.run(model, x, y, pgd_delta, threat, seed=seed,
                        jit_compile=jit_compile, training=training, loss_fn=loss_fn,
                        compact=not (jit_compile or training))
