"""MAX: worst case over single-norm PGD attacks (PAPER_NOTES section 4).

References:
  Tramer, Boneh, "Adversarial training and robustness for multiple perturbations",
  NeurIPS 2019, arXiv:1904.13000; Maini, Wong, Kolter 2020, arXiv:1909.04068.
"""

from typing import Sequence

import tensorflow as tf

from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import cross_entropy
from msd_tf.attacks.pgd import pgd_delta
from msd_tf.seeding import fold
from msd_tf.threats import ThreatModel


def worst_case_delta(model, x: tf.Tensor, y: tf.Tensor, threats: Sequence[ThreatModel],
                     seed: tf.Tensor, *, training: bool = False,
                     loss_fn=cross_entropy, single=None) -> base.AttackOutput:
    """Runs `pgd_delta` (or `single(model, x, y, threat, seed, training=, loss_fn=)`)
    for every threat and keeps, per example, the highest loss.

    Ties go to the earlier threat. `counts[i]` = examples whose delta came from
    `threats[i]`.
    """
    single = single or pgd_delta
    threats = tuple(threats)
    if not threats:
        raise ValueError("Argument `threats` must name at least one ThreatModel.")
    outs = [single(model, x, y, threat, fold(seed, i), training=training, loss_fn=loss_fn)
            for i, threat in enumerate(threats)]
    losses = tf.stack([o.loss for o in outs])
    choice = tf.argmax(losses, axis=0, output_type=tf.int32)
    delta = tf.gather(tf.stack([o.delta for o in outs], axis=1), choice[:, None],
                      batch_dims=1)[:, 0]
    counts = tf.reduce_sum(tf.one_hot(choice, len(threats)), axis=0)
    return base.AttackOutput(delta=delta, loss=tf.reduce_max(losses, axis=0),
                             choice=choice, counts=counts)


def worst_case(model, x, y, threats: Sequence[ThreatModel], *, seed=0,
               training: bool = False, jit_compile: bool = False,
               loss_fn=cross_entropy) -> tf.Tensor:
    """MAX attack: each PGD separately, per-example highest loss; returns `x_adv`."""
    threats = tuple(threats)

    return compiled.run(model, x, y, worst_case_delta, threats, seed=seed,
                        jit_compile=jit_compile, training=training, loss_fn=loss_fn)
