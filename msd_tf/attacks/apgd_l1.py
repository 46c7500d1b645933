"""l_1-APGD as AutoAttack runs it: adaptive sparsity, a step size tied to it, and a
shrinking radius.

References:
  Croce, Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image
  classifiers", ICML 2021, arXiv:2103.01208 (Algorithm 1, the sparsity and step-size
  rules, the exact projection onto the l_1 ball intersected with the box).
  AutoAttack's "standard" version for L1 (fra31/auto-attack, `autopgd_base.py`,
  `use_largereps`): the radius schedule 3 eps -> 2 eps -> eps.

What one phase at radius eps computes (per example, one `tf.while_loop`):
  - direction: the signs of the coordinates whose |grad| is at least the
    ceil(k)-th largest, k = `sparsity` * n (no box mask: the projection handles the
    box), divided by their count, so a step has l_1 length `step`;
  - delta <- P(delta + step * direction), P the exact projection onto
    {||d||_1 <= eps, 0 <= x + d <= 1} (`projections.project_l1_box`); no momentum;
  - every max(floor(0.04 * iterations), 1) iterations (every iteration for 30 or
    40): with n0 the number of non-zero coordinates of the best (highest-loss)
    point, `sparsity` <- n0 / n / 1.5; where n0 fell below 0.95 of its value at the
    previous check the step size returns to eps and the iterate to the best point,
    elsewhere the step size is divided by 1.5; it stays in [eps / 10, eps];
  - start: a Gaussian point projected onto ball and box, sparsity 0.2; or a given
    point, with sparsity from its own number of non-zero coordinates;
  - kept: the highest-loss point, and the last adversarial point found.

The schedule (`eps_factors=(3, 2, 1)`, AutoAttack's standard for L1): phases of
ceil(0.3 T), ceil(0.3 T) and the rest of the T iterations at 3 eps, 2 eps and eps,
each phase starting from the previous one's highest-loss point projected onto its
smaller ball; only points found in the last phase (radius eps) count as adversarial.

AutoAttack's own first start (`decr_eps_pgd`) passes the point `x + noise` where the
projection expects the perturbation `noise`; we project the perturbation, as its
non-schedule start does.
"""

import math

import tensorflow as tf

from msd_tf import projections, shapes
from msd_tf.attacks import base
from msd_tf.seeding import INIT_STREAM, fold

# AutoAttack's constants for L1 (Croce and Hein 2021, section 3).
_FIRST_SPARSITY = 0.2      # fraction of coordinates the first direction moves
_SPARSITY_DIVISOR = 1.5    # new sparsity = non-zeros of the best point / n / 1.5
_STEP_DIVISOR = 1.5        # step size divided by this where sparsity did not fall
_MIN_STEP_FRACTION = 0.1   # the step size stays in [eps / 10, eps]
_SPARSITY_FALL = 0.95      # "sparsity fell": non-zeros below 0.95 of the last check
_CHECK_FRACTION = 0.04     # checks every max(floor(0.04 T), 1) iterations


def phase_iterations(steps: int, eps_factors) -> list[int]:
    """Iterations per phase: ceil(0.3 T) for each phase but the last, which gets the
    rest (AutoAttack's 30 / 30 / 40 of 100). A single factor, or too few iterations
    for every phase to get one, gives one phase of all T."""
    if len(eps_factors) == 1 or steps < 3 * len(eps_factors):
        return [steps]
    first = [math.ceil(0.3 * steps)] * (len(eps_factors) - 1)
    return first + [steps - sum(first)]


def _non_zeros(delta: tf.Tensor) -> tf.Tensor:
    """Per-example number of non-zero coordinates (`[B]`, float32)."""
    return tf.reduce_sum(tf.cast(shapes.flatten(delta) != 0, tf.float32), axis=1)


def _direction(grad: tf.Tensor, sparsity: tf.Tensor) -> tf.Tensor:
    """Signs of the coordinates with |grad| >= the value at rank floor((1 - sparsity) n)
    of the ascending |grad| (AutoAttack's rule), divided by their count: l_1 norm 1."""
    flat = shapes.flatten(grad)
    n = tf.shape(flat)[1]
    ascending = tf.sort(tf.abs(flat), axis=1)
    rank = tf.cast(tf.math.floor((1.0 - sparsity) * tf.cast(n, tf.float32)), tf.int32)
    threshold = tf.gather(ascending, tf.clip_by_value(rank, 0, n - 1), axis=1,
                          batch_dims=1)[:, None]
    s = tf.where(tf.abs(flat) >= threshold, tf.sign(flat), tf.zeros_like(flat))
    s = s / (tf.reduce_sum(tf.abs(s), axis=1, keepdims=True) + 1e-10)
    return tf.reshape(s, tf.shape(grad))


def l1_phase(model, x, y, delta0, *, eps: float, iterations: int, loss_fn,
             given_start: bool, training: bool = False, loss_for=None, group: int = 1):
    """One l_1-APGD run of `iterations` steps at radius `eps` from `delta0` (in ball and
    box). A random start (`given_start=False`) begins at sparsity 0.2; a given one at
    its own non-zeros / n / 1.5, and its non-zeros are the first check's reference.
    With `loss_for` (the loss of gathered rows, see `base.loss_and_grad_where`), an
    example stops at its first adversarial point, the passes skip it, and the phase
    ends once all are fooled (the same flags for less work); `group`: see
    `apgd.apgd_delta`.

    Returns:
      `(best, best_loss, adv, fooled)`: the highest-loss delta and its loss, the last
      adversarial delta found (where `fooled`, else `delta0`), and whether one was.
    """
    batch = tf.shape(x)[0]
    y_int = tf.cast(y, tf.int32)
    n = tf.cast(tf.reduce_prod(tf.shape(x)[1:]), tf.float32)
    period = max(int(_CHECK_FRACTION * iterations), 1)
    loss0, logits0, grad0 = base.loss_and_grad(model, x, delta0, y, training=training,
                                               loss_fn=loss_fn)
    fooled0 = tf.argmax(logits0, axis=1, output_type=tf.int32) != y_int
    if given_start:
        last_non_zeros = _non_zeros(delta0)
        sparsity0 = last_non_zeros / n / _SPARSITY_DIVISOR
    else:
        last_non_zeros = tf.fill([batch], n)
        sparsity0 = tf.fill([batch], _FIRST_SPARSITY)
    state = dict(i=tf.constant(0), delta=delta0, grad=grad0, best=delta0, best_loss=loss0,
                 best_grad=grad0, adv=delta0, fooled=fooled0,
                 step=tf.fill([batch], tf.cast(eps, tf.float32)), sparsity=sparsity0,
                 last_non_zeros=last_non_zeros)

    def body(s):
        step = shapes.expand_to_rank(s["step"], x)
        new = projections.project_l1_box(x, s["delta"] + step * _direction(
            s["grad"], s["sparsity"]), eps)
        compact = loss_for is not None
        live = ~base.any_in_group(s["fooled"], group) if compact else tf.ones([batch], tf.bool)
        loss, logits, grad = base.loss_and_grad_on(model, x, new, y, live, compact=compact,
                                                   training=training, loss_fn=loss_fn,
                                                   loss_for=loss_for)
        now_fooled = (tf.argmax(logits, axis=1, output_type=tf.int32) != y_int) & live
        adv = tf.where(base.broadcast_mask(now_fooled, x), new, s["adv"])
        better = (loss > s["best_loss"]) & live
        m = base.broadcast_mask(better, x)
        best, best_grad = tf.where(m, new, s["best"]), tf.where(m, grad, s["best_grad"])
        best_loss = tf.where(better, loss, s["best_loss"])
        # Sparsity and step-size check (every `period` iterations).
        check = tf.equal((s["i"] + 1) % period, 0)
        non_zeros = _non_zeros(best)
        fell = check & (non_zeros / tf.maximum(s["last_non_zeros"], 1.0) < _SPARSITY_FALL)
        step = tf.where(check, tf.where(fell, eps, s["step"] / _STEP_DIVISOR), s["step"])
        step = tf.clip_by_value(step, _MIN_STEP_FRACTION * eps, eps)
        back = base.broadcast_mask(fell, x)
        return (dict(
            i=s["i"] + 1, delta=tf.where(back, best, new),
            grad=tf.where(back, best_grad, grad), best=best, best_loss=best_loss,
            best_grad=best_grad, adv=adv, fooled=s["fooled"] | now_fooled, step=step,
            sparsity=tf.where(check, non_zeros / n / _SPARSITY_DIVISOR, s["sparsity"]),
            last_non_zeros=tf.where(check, non_zeros, s["last_non_zeros"])),)

    def running(s):
        if loss_for is None:
            return s["i"] < iterations
        return (s["i"] < iterations) & ~tf.reduce_all(base.any_in_group(s["fooled"], group))

    out = tf.while_loop(running, body, (state,))[0]
    return out["best"], out["best_loss"], out["adv"], out["fooled"]


def apgd_l1_delta(model, x: tf.Tensor, y: tf.Tensor, eps: float, steps: int,
                  seed: tf.Tensor, *, loss_fn, eps_factors=(3.0, 2.0, 1.0),
                  training: bool = False, loss_for=None, noise=None, group: int = 1,
                  highest_loss: bool = False):
    """One start of l_1-APGD with AutoAttack's radius schedule (see the module doc).

    Args:
      eps: the radius that counts; steps: iterations over all phases.
      eps_factors: radius of each phase in units of eps, the last must be 1;
        `(1.0,)`: one phase at eps (AutoAttack's APGD without `use_largereps`).
      loss_for: given (see `l1_phase`), the phase at eps skips fooled examples (the
        larger-radius phases must run on all: their adversarial points do not count).
      noise: the start before projection, instead of a normal draw from `seed`;
      group: see `apgd.apgd_delta`.
      highest_loss: return the highest-loss delta even where an adversarial one was
        found (a training attack's choice, as E-AT's and RAMP's training APGD).

    Returns:
      `(delta, loss)`: the last adversarial delta of the last phase where one was
      found, else that phase's highest-loss delta, and the loss there (`[B]`).
    """
    if not eps_factors or float(eps_factors[-1]) != 1.0:
        raise ValueError(f"Argument `eps_factors` must end with 1.0 (the radius that "
                         f"counts). Received: {eps_factors}")
    factors = [float(f) for f in eps_factors]
    iters = phase_iterations(steps, factors)
    if len(iters) == 1:
        factors = [1.0]
    if noise is None:
        noise = tf.random.stateless_normal(tf.shape(x), fold(seed, INIT_STREAM), dtype=x.dtype)
    delta = noise
    for factor, iterations in zip(factors, iters):
        # The start, then each phase's best, onto this phase's (smaller) ball.
        delta = projections.project_l1_box(x, delta, factor * eps)
        best, best_loss, adv, fooled = l1_phase(
            model, x, y, delta, eps=factor * eps, iterations=iterations, loss_fn=loss_fn,
            given_start=len(iters) > 1, training=training,
            loss_for=loss_for if factor == 1.0 else None, group=group)
        delta = best
    if highest_loss:
        return best, best_loss
    return tf.where(base.broadcast_mask(fooled, x), adv, best), best_loss
