"""Auto-PGD (APGD) with cross-entropy or targeted DLR loss, for l_inf, l_2 and l_1.

References:
  Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", ICML 2020, arXiv:2003.01690 (APGD, DLR loss).
  Croce, Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image
  classifiers", ICML 2021, arXiv:2103.01208 (l1-APGD).

What is computed (per example, all in one `tf.while_loop`):
  - start: a random point of the ball (clipped to the box); step size eta = 2 eps
    (l_inf, l_2) or eta = 1 (l_1, where a step has l_1 length eta * eps);
  - z = P(x_k + eta * d(grad)); x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))
    with momentum a = 0.75 (a = 1 at the first step);
  - checkpoints after 22% of the iterations, then windows shrinking by 3% down to 6%:
    the step size halves (and the iterate returns to the best point) where the loss
    rose in fewer than 75% of the window's steps, or where the step size was not
    halved at the previous checkpoint and the best loss has not improved since;
  - l_1: l_1-APGD as AutoAttack runs it, with adaptive sparsity and the radius
    schedule 3 eps -> 2 eps -> eps (`apgd_l1.py`).
  - returned: the first adversarial point found, else the highest-loss point.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from msd_tf import balls, shapes
from msd_tf.attacks import apgd_l1, base, compiled
from msd_tf.attacks.losses import LOSSES, check_loss, cross_entropy
from msd_tf.balls import project_onto, random_in_ball
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import ThreatModel

# l_1-APGD's radius schedule, in units of eps (AutoAttack's standard version for L1).
L1_EPS_FACTORS = (3.0, 2.0, 1.0)


def _checkpoints(n_iter: int):
    """Booleans: is iteration i (0-based, after its step) a checkpoint."""
    flags = np.zeros(n_iter, bool)
    window = max(math.ceil(0.22 * n_iter), 1)
    w_min, w_decr = max(math.ceil(0.06 * n_iter), 1), max(math.ceil(0.03 * n_iter), 1)
    i = window - 1
    while i < n_iter:
        flags[i] = True
        window = max(window - w_decr, w_min)
        i += window
    return flags


def apgd_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor, *,
               loss: str = "ce", target: tf.Tensor | None = None, training: bool = False,
               momentum: float = 0.75, rho: float = 0.75,
               l1_eps_factors=L1_EPS_FACTORS, compact: bool = False, start=None,
               group: int = 1, highest_loss: bool = False) -> base.AttackOutput:
    """Graph-level APGD run (one start; `threat.steps` iterations).

    An example that has fooled the model keeps its first adversarial point whatever
    the later iterations do, so with `compact` the forward and backward passes skip
    it (gathering the others; not under XLA or with training=True, see
    `base.loss_and_grad_where`) and the run ends once every example is fooled: the
    same result for less work.

    Args:
      loss: "ce" (cross-entropy), "dlr" (untargeted DLR), "dlr_targeted" (needs
        `target`, `[B]` int classes), or a callable `(logits, y) -> [B]` to maximize.
      l1_eps_factors: l_1 only, the radius schedule in units of eps (AutoAttack's
        standard: 3, 2, 1; `(1.0,)`: none). See `apgd_l1.py`.
      start: the starting point (l_inf, l_2: a delta in ball and box; l_1: the noise
        `apgd_l1_delta` projects), instead of one drawn from `seed`.
      group: the batch holds `group` runs of the same examples, run-major (row
        r * B + b); with `compact` an example's rows all stop once one of them fooled
        the model (`apgd_attack_delta` runs restarts and targets so).
      highest_loss: return the highest-loss point (its loss in `loss`) even where an
        adversarial point was found: APGD as a training attack (E-AT's and RAMP's
        `apgd_train`), where the evaluation wants the first adversarial point. Not
        with `compact` (which stops at the first adversarial point).
    """
    if highest_loss and compact:
        raise ValueError("`highest_loss` needs every iteration: not with `compact`.")
    if callable(loss):
        loss_fn = loss
    else:
        loss_fn = functools.partial(LOSSES[check_loss(loss)], target=target)

    def loss_for(rows):  # the loss of the gathered rows (their target classes)
        if callable(loss) or target is None:
            return loss_fn
        return functools.partial(LOSSES[loss], target=tf.gather(target, rows))

    return _RUNS[threat.norm](
        model, x, y, threat, seed, loss_fn=loss_fn, loss_for=loss_for, training=training,
        momentum=momentum, rho=rho, l1_eps_factors=l1_eps_factors, compact=compact,
        start=start, group=group, highest_loss=highest_loss)


def _l1_run(model, x, y, threat, seed, *, loss_fn, loss_for, training, l1_eps_factors,
            compact, start, group, highest_loss, **_) -> base.AttackOutput:
    """l_1: l_1-APGD (`apgd_l1.py`), its own step and AutoAttack's radius schedule."""
    delta, best_loss = apgd_l1.apgd_l1_delta(
        model, x, y, threat.eps, threat.steps, seed, loss_fn=loss_fn,
        eps_factors=tuple(l1_eps_factors), training=training,
        loss_for=loss_for if compact else None, noise=start, group=group,
        highest_loss=highest_loss)
    return base.AttackOutput(delta=delta, loss=best_loss, counts=base.one_norm_counts(x))


def _ball_run(model, x, y, threat, seed, *, loss_fn, loss_for, training, momentum, rho,
              compact, start, group, highest_loss, **_) -> base.AttackOutput:
    """l_inf, l_2: APGD's momentum ascent in the ball (Croce and Hein 2020)."""
    batch = tf.shape(x)[0]
    counts = base.one_norm_counts(x)
    n_iter, ball = threat.steps, balls.get(threat.norm)
    ckpt = tf.constant(_checkpoints(n_iter))
    y_int = tf.cast(y, tf.int32)
    eps = threat.eps
    delta0 = _ball_start(x, threat, seed) if start is None else start
    loss0, logits0, grad0 = base.loss_and_grad(model, x, delta0, y, training=training,
                                               loss_fn=loss_fn)
    fooled0 = tf.argmax(logits0, axis=1, output_type=tf.int32) != y_int
    eta0 = tf.fill([batch], 2.0 * eps)
    state = dict(
        i=tf.constant(0), delta=delta0, prev=delta0, grad=grad0, loss=loss0,
        eta=eta0, best=delta0, best_loss=loss0, best_grad=grad0,
        adv=delta0, fooled=fooled0, increases=tf.zeros([batch]),
        ckpt_best=loss0, reduced_last=tf.zeros([batch], tf.bool))

    def body(s):
        a = tf.where(s["i"] > 0, momentum, 1.0)
        step = shapes.expand_to_rank(s["eta"], x) * ball.unit_step(s["grad"])
        z = project_onto(x, s["delta"] + step, threat)
        new = project_onto(
            x, s["delta"] + a * (z - s["delta"]) + (1 - a) * (s["delta"] - s["prev"]), threat)
        live = ~base.any_in_group(s["fooled"], group) if compact else tf.ones([batch], tf.bool)
        new_loss, logits, new_grad = base.loss_and_grad_on(
            model, x, new, y, live, compact=compact, training=training, loss_fn=loss_fn,
            loss_for=loss_for)
        now_fooled = (tf.argmax(logits, axis=1, output_type=tf.int32) != y_int) & live
        first_adv = now_fooled & ~s["fooled"]
        adv = tf.where(base.broadcast_mask(first_adv, x), new, s["adv"])
        fooled = s["fooled"] | now_fooled
        better = (new_loss > s["best_loss"]) & live
        best = tf.where(base.broadcast_mask(better, x), new, s["best"])
        best_grad = tf.where(base.broadcast_mask(better, x), new_grad, s["best_grad"])
        best_loss = tf.where(better, new_loss, s["best_loss"])
        increases = s["increases"] + tf.cast(new_loss > s["loss"], tf.float32)
        # Checkpoint: halve the step size where the loss oscillates or stalls.
        at_ckpt = tf.gather(ckpt, s["i"])
        window = tf.cast(s["i"] - _last_ckpt(ckpt, s["i"]), tf.float32)
        oscillates = increases <= rho * window
        stalled = ~s["reduced_last"] & (s["ckpt_best"] >= best_loss)
        reduce = at_ckpt & (oscillates | stalled)
        eta = tf.where(reduce, s["eta"] / 2, s["eta"])
        m = base.broadcast_mask(reduce, x)
        delta = tf.where(m, best, new)
        grad = tf.where(m, best_grad, new_grad)
        return (dict(
            i=s["i"] + 1, delta=delta, prev=tf.where(m, best, s["delta"]), grad=grad,
            loss=tf.where(reduce, best_loss, new_loss), eta=eta, best=best,
            best_loss=best_loss, best_grad=best_grad, adv=adv, fooled=fooled,
            increases=tf.where(at_ckpt, tf.zeros_like(increases), increases),
            ckpt_best=tf.where(at_ckpt, best_loss, s["ckpt_best"]),
            reduced_last=tf.where(at_ckpt, reduce, s["reduced_last"])),)

    def running(s):
        if not compact:
            return s["i"] < n_iter
        return (s["i"] < n_iter) & ~tf.reduce_all(base.any_in_group(s["fooled"], group))

    out = tf.while_loop(running, body, (state,))[0]
    if highest_loss:
        return base.AttackOutput(delta=out["best"], loss=out["best_loss"], counts=counts)
    delta = tf.where(base.broadcast_mask(out["fooled"], x), out["adv"], out["best"])
    return base.AttackOutput(delta=delta, loss=out["best_loss"],
                             counts=counts)


def _ball_start(x, threat, seed):
    """A uniform point of the ball (in the box): APGD's start for l_inf and l_2."""
    return random_in_ball(x, threat, fold(seed, INIT_STREAM))


def _l1_noise(x, threat, seed):
    """Normal noise, which l_1-APGD projects onto its first radius: its start."""
    return tf.random.stateless_normal(tf.shape(x), fold(seed, INIT_STREAM), dtype=x.dtype)


# Per norm: one APGD run, and the start a run draws from its seed (`start=` of a run).
_RUNS = {"linf": _ball_run, "l2": _ball_run, "l1": _l1_run}
_STARTS = {"linf": _ball_start, "l2": _ball_start, "l1": _l1_noise}


def _last_ckpt(ckpt: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
    """Index of the last checkpoint strictly before iteration i (-1 if none)."""
    idx = tf.range(tf.shape(ckpt)[0])
    before = ckpt & (idx < i)
    return tf.reduce_max(tf.where(before, idx, -1))


def apgd_attack_delta(model, x, y, threat: ThreatModel, seed, *, loss: str = "ce",
                      n_targets: int = 9, target_offset: int = 0, training: bool = False,
                      l1_eps_factors=L1_EPS_FACTORS, compact: bool = False) -> base.AttackOutput:
    """APGD-CE or APGD-DLR (`loss="ce"` / `"dlr"`) with `threat.restarts` random starts,
    or APGD-T (`"dlr_targeted"`) over the `n_targets` most likely wrong classes after
    the `target_offset` most likely ones (one start each), keeping per example the
    first adversarial point found (else the highest-loss one). An unknown `loss`
    raises a ValueError listing the known ones."""
    if check_loss(loss) != "dlr_targeted":
        runs, order = threat.restarts, None
    else:
        logits = base.logits_of(model, x, training)
        masked = tf.where(tf.one_hot(tf.cast(y, tf.int32), tf.shape(logits)[1]) > 0, -np.inf,
                          tf.cast(logits, tf.float32))
        wrong = int(logits.shape[1]) - 1
        if not 0 <= target_offset < wrong:
            raise ValueError(f"Argument `target_offset` must be in [0, {wrong}). Received: "
                             f"{target_offset}")
        runs = min(n_targets, wrong - target_offset)
        order = tf.math.top_k(masked, k=target_offset + runs).indices[:, target_offset:]

    def run_seed(r):
        return fold(seed, r + (target_offset if order is not None else 0))

    if compact and runs > 1:
        return _stacked_runs(model, x, y, threat, runs, run_seed, order, loss=loss,
                             training=training, l1_eps_factors=l1_eps_factors)

    def one_run(r):
        target = None if order is None else tf.gather(order, r, axis=1)
        return apgd_delta(model, x, y, threat, run_seed(r), loss=loss, target=target,
                          training=training, l1_eps_factors=l1_eps_factors,
                          compact=compact).delta

    # Runs are compared on cross-entropy (fooling first), whatever loss they ascended.
    delta, ce = base.best_of_runs(one_run, runs, x, y, model, training, cross_entropy)
    return base.AttackOutput(delta=delta, loss=ce, counts=base.one_norm_counts(x))


def _stacked_runs(model, x, y, threat, runs: int, run_seed, order, *, loss, training,
                  l1_eps_factors) -> base.AttackOutput:
    """All `runs` restarts (or targets, `order[:, r]`) as one batch of runs x examples,
    each run from the start `run_seed(r)` gives it alone; an example's runs stop once
    one fooled the model (`group`), so the work is that of running them one after the
    other on the examples still unbroken (AutoAttack's order), in one loop over
    iterations instead of `runs`. Kept per example, as `base.best_of_runs`: the
    fooling run of highest cross-entropy, else the run of highest cross-entropy."""
    batch = tf.shape(x)[0]
    tile = lambda t: tf.concat([t] * runs, axis=0)  # noqa: E731  run-major rows
    starts = [_STARTS[threat.norm](x, threat, run_seed(r)) for r in range(runs)]
    target = None if order is None else tf.reshape(tf.transpose(order), [-1])
    xs, ys = tile(x), tile(y)
    delta = apgd_delta(model, xs, ys, threat, None, loss=loss, target=target,
                       training=training, l1_eps_factors=l1_eps_factors, compact=True,
                       start=tf.concat(starts, axis=0), group=runs).delta
    logits = base.logits_of(model, xs + delta, training)
    ce = tf.reshape(cross_entropy(logits, ys), [runs, batch])
    fooled = tf.reshape(tf.argmax(logits, axis=1, output_type=tf.int32) != tf.cast(ys, tf.int32),
                        [runs, batch])
    score = tf.where(tf.reduce_any(fooled, axis=0, keepdims=True),
                     tf.where(fooled, ce, -np.inf), ce)
    pick = tf.argmax(score, axis=0, output_type=tf.int32)  # the first of equal scores
    rows = pick * batch + tf.range(batch)
    return base.AttackOutput(delta=tf.gather(delta, rows),
                             loss=tf.gather(tf.reshape(ce, [-1]), rows),
                             counts=base.one_norm_counts(x))


def apgd(model, x, y, threat: ThreatModel, *, loss: str = "ce", seed=0, n_targets: int = 9,
         target_offset: int = 0, training: bool = False, jit_compile: bool = False,
         l1_eps_factors=L1_EPS_FACTORS) -> tf.Tensor:
    """APGD-CE (`loss="ce"`), APGD-DLR (`"dlr"`), both with `threat.restarts` starts, or
    APGD-T (`"dlr_targeted"`, the `n_targets` most likely wrong classes after the
    `target_offset` most likely ones); l_1 with AutoAttack's radius schedule
    `l1_eps_factors` (`(1.0,)`: none); returns
    adversarial images in the ball and the box. Compiled once per model and settings;
    deterministic for `seed`. An unknown `loss` raises a ValueError listing the known
    ones."""
    check_loss(loss)

    return compiled.run(model, x, y, apgd_attack_delta, threat, seed=seed,
                        jit_compile=jit_compile, loss=loss, n_targets=n_targets,
                        target_offset=target_offset, training=training,
                        l1_eps_factors=tuple(float(f) for f in l1_eps_factors),
                        compact=not (jit_compile or training))
