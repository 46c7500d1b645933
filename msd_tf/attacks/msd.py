"""Multi steepest descent (MSD), Algorithm 1 of Maini, Wong, Kolter (2020).

References:
  Maini, Wong, Kolter, "Adversarial robustness against the union of multiple
  perturbation models", ICML 2020, arXiv:1909.04068.
"""

from typing import Sequence

import tensorflow as tf

from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import cross_entropy
from msd_tf.balls import projected_step, random_in_ball
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import ThreatModel


def msd_delta(model, x: tf.Tensor, y: tf.Tensor, threats: Sequence[ThreatModel],
              seed: tf.Tensor, *, steps: int | None = None, training: bool = False,
              loss_fn=cross_entropy) -> base.AttackOutput:
    """Graph-level MSD.

    delta_0 = 0, or, if some of `threats` ask for a `random_start`, a point drawn
    uniformly from the ball of one of those, chosen per example uniformly (a start in
    the union; tried in the recipe search). Every iteration computes ONE
    gradient at delta_t, forms one candidate per threat model, `Proj_p(delta_t + v_p)`,
    scores all candidates in ONE forward pass of a `len(threats)`-times batch, and
    moves each example to its highest-loss candidate. Ties go to the earlier threat in
    `threats` (argmax returns the first maximum). As in the reference code, the delta
    with the highest loss seen over all iterations (delta_0 included) is returned.

    Args:
      model: Keras model or callable, images in [0, 1] -> logits.
      x: `[B, ...]` images; y: `[B]` labels.
      threats: the balls (any non-empty subset of l_inf, l_2, l_1), each with its
        eps and alpha; their `random_start` as above; `steps` and `restarts` ignored.
      seed: `[2]` int64 seed (the l_1 step's random k, the random start).
      steps: iterations; defaults to the largest `steps` among `threats`.
      training: passed to the model.
      loss_fn: per-example loss.

    Returns:
      `base.AttackOutput` with `counts[i]` = how many (example, iteration) moves
      chose `threats[i]`, and `choice` = the threat of the returned delta's last move.
    """
    threats = tuple(threats)
    if not threats:
        raise ValueError("Argument `threats` must name at least one ThreatModel.")
    steps = steps if steps is not None else max(t.steps for t in threats)
    n_threats = len(threats)
    batch = tf.shape(x)[0]
    x_tiled = tf.concat([x] * n_threats, axis=0)
    y_tiled = tf.concat([y] * n_threats, axis=0)

    def keep_best(delta, loss, choice, best):
        best_delta, best_loss, best_choice = best
        take = loss > best_loss
        return (tf.where(base.broadcast_mask(take, x), delta, best_delta),
                tf.where(take, loss, best_loss), tf.where(take, choice, best_choice))

    def body(t, delta, choice, counts, best):
        loss, _, grad = base.loss_and_grad(model, x, delta, y, training=training,
                                           loss_fn=loss_fn)
        best = keep_best(delta, loss, choice, best)  # covers delta_0
        it_seed = fold(seed, t)
        candidates = [projected_step(x, delta, grad, threat, it_seed)
                      for threat in threats]
        # ONE forward pass scores every candidate: a [P * B, ...] batch.
        logits = base.logits_of(model, x_tiled + tf.concat(candidates, axis=0), training)
        cand_loss = tf.reshape(loss_fn(logits, y_tiled), [n_threats, batch])
        choice = tf.argmax(cand_loss, axis=0, output_type=tf.int32)  # ties: first threat
        delta = candidates[0]
        for i in range(1, n_threats):
            delta = tf.where(base.broadcast_mask(choice == i, x), candidates[i], delta)
        counts += tf.reduce_sum(tf.one_hot(choice, n_threats), axis=0)
        best = keep_best(delta, tf.reduce_max(cand_loss, axis=0), choice, best)
        return t + 1, delta, choice, counts, best

    zero_choice = tf.zeros([batch], tf.int32)
    delta0 = _random_start(x, threats, seed)
    best0 = (tf.zeros_like(x), tf.fill([batch], tf.constant(-float("inf"), tf.float32)),
             zero_choice)
    _, _, _, counts, (best_delta, best_loss, best_choice) = tf.while_loop(
        lambda t, *_: t < steps, body,
        (tf.constant(0), delta0, zero_choice, tf.zeros([n_threats], tf.float32), best0))
    return base.AttackOutput(delta=best_delta, loss=best_loss, choice=best_choice,
                             counts=counts)


def _random_start(x, threats, seed):
    """delta_0: zero, or per example a uniform point of one of the balls (drawn
    uniformly) among the threats with `random_start`."""
    starts = [t for t in threats if t.random_start]
    if not starts:
        return tf.zeros_like(x)
    start_seed = fold(seed, INIT_STREAM)
    points = [random_in_ball(x, t, fold(start_seed, i)) for i, t in enumerate(starts)]
    if len(points) == 1:
        return points[0]
    which = tf.random.stateless_uniform([tf.shape(x)[0]], fold(start_seed, len(starts)),
                                        maxval=len(starts), dtype=tf.int32)
    delta = points[0]
    for i in range(1, len(points)):
        delta = tf.where(base.broadcast_mask(which == i, x), points[i], delta)
    return delta


def msd(model, x, y, threats: Sequence[ThreatModel], *, steps: int | None = None,
        seed=0, training: bool = False, jit_compile: bool = False,
        loss_fn=cross_entropy) -> tf.Tensor:
    """MSD attack on the union of `threats`; returns adversarial images.

    Compiled once per model, settings and input shape; deterministic for `seed`.
    The returned `x_adv` lies in [0, 1] and in at least one of the balls
    (`||x_adv - x||_p <= eps_p` for the norm it came from).

    Example:
      >>> threats, steps = msd_tf.threats.MSD_TRAIN["mnist"]
      >>> x_adv = msd(model, x, y, threats, steps=steps, seed=0)
    """
    threats = tuple(threats)

    return compiled.run(model, x, y, msd_delta, threats, seed=seed,
                        jit_compile=jit_compile, steps=steps, training=training, loss_fn=loss_fn)
