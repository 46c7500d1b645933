"""FAB-T: the targeted Fast Adaptive Boundary attack, for l_inf, l_2 and l_1, as
AutoAttack's standard version runs it.

References:
  Croce, Hein, "Minimally distorted adversarial examples with a fast adaptive boundary
  attack", ICML 2020, arXiv:1907.02044 (FAB).
  Croce, Hein, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", ICML 2020, arXiv:2003.01690 (FAB-T in AutoAttack;
  settings of fra31/auto-attack, `fab_base.py`, `fab_projections.py`, `set_version`).

What is computed (per example; `fab_run_delta` is one `tf.while_loop` over iterations):
  - FAB looks for the adversarial example of smallest l_p norm. With the target class t,
    f(z) = logit_t(z) - logit_y(z) and the linearization of {f = 0} at the iterate x_k is
    the hyperplane {z : f(x_k) + grad f(x_k) . (z - x_k) = 0};
  - d_k and d_0: the smallest l_p perturbations taking x_k and the clean x onto that
    hyperplane inside the box [0, 1]^n (`project_onto_hyperplane`; where no point of
    the box reaches it, the move to the box corner that goes furthest towards it);
  - x_{k+1} = clip((x_k + eta d_k)(1 - a) + (x + eta d_0) a), with
    a = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max) (both norms at least 1e-8):
    overshoot eta = 1.05, bias towards x at most alpha_max = 0.1;
  - if x_{k+1} is misclassified (any class but y) it is kept if its norm is the smallest
    so far, and the iterate steps back towards x: x_{k+1} = x + beta (x_{k+1} - x),
    beta = 0.9. 100 iterations (`threat.steps`); no final search (AutoAttack runs none;
    the original FAB code's "linear approximation search" was off by default).
  - FAB-T (`fab_t_delta`): runs for the 9 most likely wrong classes of the clean
    logits in turn (`n_targets`), `threat.restarts` runs each (AutoAttack's standard
    version: 1), each run only on the examples no earlier run broke. The first run of
    each target starts at x; a further one at x + (eps / 2) u / ||u||, clipped to the
    box (u uniform in [-1, 1]^n for l_inf, Gaussian for l_2 and l_1). A run's result
    is accepted only if it is misclassified and its norm is at most eps; otherwise the
    example keeps delta = 0. Examples misclassified at x are not attacked (delta = 0).
"""

import numpy as np
import tensorflow as tf

from msd_tf import balls, shapes
from msd_tf.attacks import base, compiled
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import ThreatModel

ALPHA_MAX = 0.1  # AutoAttack's FAB defaults (fab_base.py), also its standard version's
ETA = 1.05
BETA = 0.9
N_TARGETS = 9  # set_version("standard"): fab.n_target_classes = 9, fab.n_restarts = 1
_TINY_W = 1e-8  # coordinates with |w| below this do not move (l_2, l_1; as AutoAttack)


def _room(t, w):
    """How far each coordinate of `t` can move in the box [0, 1] in the direction that
    lowers `w . t`: down to 0 where w >= 0, up to 1 where w < 0."""
    return tf.where(w < 0, 1.0 - t, t)


def _down(w):
    """The direction (+-1) in which each coordinate lowers `w . t` (-1 where w = 0)."""
    return tf.where(w < 0, tf.ones_like(w), -tf.ones_like(w))


def _at(values, index):
    """`values[b, index[b]]` for `[N, n]` values and `[N]` indices."""
    return tf.gather(values, index[:, None], batch_dims=1)[:, 0]


def _first_reaching(reach, c):
    """Per row, how many breakpoints have `reach < c` (the number the binary search of
    AutoAttack's projections finds; `reach` is non-decreasing along a row)."""
    return tf.reduce_sum(tf.cast(reach < c[:, None], tf.int32), axis=1)


def _onto_linf(t, w, c):
    """l_inf: d_i = -sign(w_i) min(lam, room_i) with sum |w_i| min(lam, room_i) = c:
    breakpoints are the rooms, sorted ascending."""
    room, aw = _room(t, w), tf.abs(w)
    order = tf.argsort(room, axis=1, stable=True)
    rs, ws = tf.gather(room, order, batch_dims=1), tf.gather(aw, order, batch_dims=1)
    below = tf.math.cumsum(ws * rs, axis=1, exclusive=True)  # the saturated coordinates
    above = tf.math.cumsum(ws, axis=1, reverse=True)  # the free ones' sum |w|
    reach = below + rs * above  # the decrease of w . t at lam = rs_k
    n = tf.shape(t)[1]
    k = tf.minimum(_first_reaching(reach, c), n - 1)
    lam = tf.maximum(tf.math.divide_no_nan(c - _at(below, k), _at(above, k)), 0.0)
    down = _down(w)
    d = down * tf.minimum(lam[:, None], room)
    corner = c[:, None] >= reach[:, -1:]  # not reachable in the box: to the corner
    d = tf.where(corner, down * room, d)
    return tf.where(w != 0, d, tf.zeros_like(d))


def _onto_l2(t, w, c):
    """l_2: d = -w min(a, r_i), r_i = room_i / |w_i| the step at which coordinate i
    reaches its face, with sum w_i^2 min(a, r_i) = c: breakpoints are the r_i."""
    active = tf.abs(w) >= _TINY_W
    w = tf.where(active, w, tf.zeros_like(w))
    r = tf.where(active, _room(t, w) / tf.where(active, tf.abs(w), 1.0), 0.0)
    order = tf.argsort(r, axis=1, stable=True)
    rs = tf.gather(r, order, batch_dims=1)
    w2 = tf.gather(tf.square(w), order, batch_dims=1)
    below = tf.math.cumsum(w2 * rs, axis=1, exclusive=True)
    above = tf.math.cumsum(w2, axis=1, reverse=True)
    reach = below + rs * above
    n = tf.shape(t)[1]
    k = tf.minimum(_first_reaching(reach, c), n - 1)
    a = tf.maximum(tf.math.divide_no_nan(c - _at(below, k), _at(above, k)), 0.0)
    d = -w * tf.minimum(a[:, None], r)
    corner = c[:, None] >= reach[:, -1:]
    return tf.where(corner, -w * r, d)


def _onto_l1(t, w, c):
    """l_1 (AutoAttack's solver): move whole coordinates to their faces in the order of
    decreasing |w_i| until the next one would cross the hyperplane, which then moves
    just onto it. Full moves lower w . t by s_i = |w_i| room_i; with the partial sums
    S_k = c - sum_{j<k} s_(j), the coordinates before the last k with S_k > 0 move
    fully and the k-th by S_k / |w_(k)|. If S_n >= 0 the box does not reach the
    hyperplane: every coordinate moves to its face."""
    room, aw = _room(t, w), tf.abs(w)
    order = tf.argsort(aw, axis=1, direction="DESCENDING", stable=True)
    down = _down(w)
    full = down * room  # the whole move of each coordinate
    s = tf.gather(aw * room, order, batch_dims=1)
    left = c[:, None] - tf.math.cumsum(s, axis=1, exclusive=True)  # S_0 .. S_{n-1}
    reachable = (c - tf.reduce_sum(s, axis=1)) < 0  # S_n < 0
    k = tf.maximum(_first_reaching(-left, tf.zeros_like(c)) - 1, 0)  # the last S_k > 0
    partial = tf.math.divide_no_nan(_at(left, k), _at(tf.gather(aw, order, batch_dims=1), k))
    pos = tf.range(tf.shape(t)[1])[None, :]
    d_sorted = tf.where(pos < k[:, None], tf.gather(full, order, batch_dims=1),
                        tf.where(pos == k[:, None],
                                 tf.gather(down, order, batch_dims=1) * partial[:, None],
                                 tf.zeros_like(full)))
    d = tf.gather(d_sorted, tf.argsort(order, axis=1, stable=True), batch_dims=1)
    d = tf.where(reachable[:, None], d, full)
    return tf.where(aw > _TINY_W, d, tf.zeros_like(d))


_ONTO = {"linf": _onto_linf, "l2": _onto_l2, "l1": _onto_l1}


def _onto_hyperplane(t, w, c, norm):
    """`project_onto_hyperplane` given the signed offsets c = w . t - b."""
    flip = c < 0  # orient every hyperplane so that w . t must decrease by c >= 0
    w = tf.where(flip[:, None], -w, w)
    return _ONTO[norm](t, w, tf.abs(c))


def project_onto_hyperplane(t: tf.Tensor, w: tf.Tensor, b: tf.Tensor, *,
                            norm: str) -> tf.Tensor:
    """The smallest l_p perturbation of `t` onto the hyperplane inside the box.

    Per row: argmin ||d||_p subject to w . (t + d) = b and 0 <= t + d <= 1. Where no
    point of the box lies on the hyperplane: the move of every coordinate (with w_i != 0)
    to the face of the box that lowers |w . (t + d) - b| (AutoAttack returns the same).
    Sorting-based, O(n log n) per row, as AutoAttack's `projection_linf/l2/l1` (whose
    binary searches over the sorted breakpoints are a count here). In l_2 and l_1,
    coordinates with |w_i| < 1e-8 do not move.

    Args:
      t: `[N, n]` points in [0, 1] (any float dtype).
      w: `[N, n]` hyperplane normals.
      b: `[N]` offsets.
      norm: "linf", "l2" or "l1".

    Returns:
      `[N, n]` perturbations d (same dtype). Pure TensorFlow, safe inside `tf.function`
      and XLA.
    """
    c = tf.reduce_sum(w * t, axis=1) - b
    return _onto_hyperplane(t, w, c, norm)


def _random_start(x, norm, eps, seed):
    """AutoAttack's FAB restart: x + (eps / 2) u / ||u||_p, clipped to the box."""
    if norm == "linf":
        u = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0, x.dtype)
    else:
        u = tf.random.stateless_normal(tf.shape(x), seed, dtype=x.dtype)
    scale = 0.5 * eps / tf.maximum(balls.per_example_norm(u, norm), 1e-12)
    return tf.clip_by_value(x + shapes.expand_to_rank(scale, x) * u, 0.0, 1.0)


def fab_run_delta(model, x: tf.Tensor, y: tf.Tensor, target: tf.Tensor, threat: ThreatModel,
                  *, start: tf.Tensor | None = None, training: bool = False,
                  alpha_max: float = ALPHA_MAX, eta: float = ETA,
                  beta: float = BETA) -> base.AttackOutput:
    """One FAB run towards the decision boundary between `y` and `target` (`[B]` int),
    `threat.steps` iterations from `start` (default: x), in `threat.norm`.

    Returns:
      `AttackOutput` with `delta` the misclassified perturbation of smallest norm found
      (any norm, possibly above eps; 0 where none) and `loss` its norm (+inf where none).
    """
    norm, batch = threat.norm, tf.shape(x)[0]
    y_int, target = tf.cast(y, tf.int32), tf.cast(target, tf.int32)
    x0 = shapes.flatten(x)
    x1 = x if start is None else start
    state = (tf.constant(0), x1, tf.zeros_like(x), tf.fill([batch], tf.constant(np.inf, x.dtype)))

    def body(i, x1, best, res):
        with tf.GradientTape() as tape:
            tape.watch(x1)
            logits = tf.cast(base.logits_of(model, x1, training), x.dtype)
            f = _at(logits, target) - _at(logits, y_int)
        w = shapes.flatten(tape.gradient(f, x1,
                                         unconnected_gradients=tf.UnconnectedGradients.ZERO))
        t1 = shapes.flatten(x1)
        # The linearized boundary f(x1) + w . (z - x1) = 0, at x1 and at x: c = w . t - b.
        c = tf.concat([f, f + tf.reduce_sum(w * (x0 - t1), axis=1)], 0)
        d = _onto_hyperplane(tf.concat([t1, x0], 0), tf.concat([w, w], 0), c, norm)
        a = tf.maximum(balls.per_example_norm(d, norm), 1e-8)
        d1, d0, a1, a0 = d[:batch], d[batch:], a[:batch], a[batch:]
        alpha = tf.clip_by_value(a1 / (a1 + a0), 0.0, alpha_max)[:, None]
        new = tf.clip_by_value((t1 + eta * d1) * (1 - alpha) + (x0 + eta * d0) * alpha,
                               0.0, 1.0)
        new = tf.reshape(new, tf.shape(x))
        pred = tf.argmax(base.logits_of(model, new, training), axis=1, output_type=tf.int32)
        adv = pred != y_int
        dist = balls.per_example_norm(new - x, norm)
        better = adv & (dist < res)
        best = tf.where(base.broadcast_mask(better, x), new - x, best)
        res = tf.where(better, dist, res)
        back = x + beta * (new - x)
        return i + 1, tf.where(base.broadcast_mask(adv, x), back, new), best, res

    _, _, best, res = tf.while_loop(lambda i, *_: i < threat.steps, body, state)
    return base.AttackOutput(delta=best, loss=res, counts=base.one_norm_counts(x))


def fab_t_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor, *,
                n_targets: int = N_TARGETS, training: bool = False, compact: bool = False,
                alpha_max: float = ALPHA_MAX, eta: float = ETA,
                beta: float = BETA) -> base.AttackOutput:
    """FAB-T as AutoAttack runs it (`FABAttack.perturb` with `targeted=True`): for the
    `n_targets` most likely wrong classes of the clean logits in turn, `threat.restarts`
    runs each (random start after the first), each on the examples still unbroken; a
    run's result is kept if misclassified within eps (`threat.eps`).

    With `compact` each run computes only the rows still unbroken (gathered; dynamic
    shapes: not under XLA, and the model must not depend on the batch composition),
    as AutoAttack; without it every run computes the whole batch and only the unbroken
    rows take its result: the same result.

    Returns:
      `AttackOutput` with `delta` (in ball and box; 0 where not broken) and `loss` the
      norm of the accepted perturbation (+inf where none).
    """
    batch, eps = tf.shape(x)[0], threat.eps
    y_int = tf.cast(y, tf.int32)
    logits = tf.cast(base.logits_of(model, x, training), tf.float32)
    classes = int(logits.shape[1])
    targets = min(n_targets, classes - 1)
    # AutoAttack's targets: the 2nd, 3rd, ... largest clean logits (of a correctly
    # classified example: its most likely wrong classes).
    ranked = tf.math.top_k(logits, k=targets + 1).indices[:, 1:]
    correct = tf.argmax(logits, axis=1, output_type=tf.int32) == y_int
    runs = targets * threat.restarts

    def run(r, delta, done, found):
        k, restart = r // threat.restarts, r % threat.restarts
        rows = tf.where(~done)[:, 0] if compact else tf.range(tf.cast(batch, tf.int64))
        xs, ys = tf.gather(x, rows), tf.gather(y_int, rows)
        tgt = tf.gather(tf.gather(ranked, k, axis=1), rows)
        if threat.restarts > 1:  # drawn for the whole batch: the same whatever `compact`
            noise = _random_start(x, threat.norm, eps, fold(fold(seed, r), INIT_STREAM))
            start = tf.where(restart > 0, tf.gather(noise, rows), xs)
        else:
            start = xs
        out = fab_run_delta(model, xs, ys, tgt, threat, start=start, training=training,
                            alpha_max=alpha_max, eta=eta, beta=beta)
        # AutoAttack's acceptance: a fresh forward pass at the image returned, and its norm.
        x_adv = base.adversarial_images(xs, out.delta)
        pred = tf.argmax(base.logits_of(model, x_adv, training), axis=1, output_type=tf.int32)
        size = balls.per_example_norm(x_adv - xs, threat.norm)
        ok = (pred != ys) & (size <= eps) & tf.math.is_finite(out.loss) & ~tf.gather(done, rows)
        keep = tf.where(ok)
        at = tf.gather(rows, keep)
        return (tf.tensor_scatter_nd_update(delta, at, tf.gather_nd(x_adv - xs, keep)),
                tf.tensor_scatter_nd_update(done, at, tf.ones_like(keep[:, 0], tf.bool)),
                tf.tensor_scatter_nd_update(found, at, tf.gather_nd(size, keep)))

    def body(r, delta, done, found):
        if compact:  # TF's fused ReluGrad rejects empty batches: skip when all are done
            delta, done, found = tf.cond(tf.reduce_all(done), lambda: (delta, done, found),
                                         lambda: run(r, delta, done, found))
        else:
            delta, done, found = run(r, delta, done, found)
        return r + 1, delta, done, found

    init = (tf.constant(0), tf.zeros_like(x), ~correct,
            tf.fill([batch], tf.constant(np.inf, x.dtype)))
    _, delta, _, found = tf.while_loop(lambda r, *_: r < runs, body, init)
    return base.AttackOutput(delta=delta, loss=found, counts=base.one_norm_counts(x))


def fab_t(model, x, y, threat: ThreatModel, *, seed=0, n_targets: int = N_TARGETS,
          training: bool = False, jit_compile: bool = False, alpha_max: float = ALPHA_MAX,
          eta: float = ETA, beta: float = BETA) -> tf.Tensor:
    """FAB-T (`fab_t_delta`): adversarial images in the ball and the box (x itself where
    no run found a misclassified point within eps). `threat.steps` iterations per run,
    `threat.restarts` runs per target class (AutoAttack's standard: 100 and 1),
    `n_targets` target classes (9). Compiled once per model and settings; deterministic
    for `seed` (which only the random starts of restarts after the first use)."""
    return compiled.run(model, x, y, fab_t_delta, threat, seed=seed, jit_compile=jit_compile,
                        n_targets=int(n_targets), training=training,
                        compact=not (jit_compile or training), alpha_max=float(alpha_max),
                        eta=float(eta), beta=float(beta))
