"""FAB-T (`attacks/fab.py`) against independent references: the hyperplane-in-box
projections against linear programs (scipy's HiGHS) and a bisection; minimal
perturbations of linear models against their closed form (box inactive) and against a
linear program (box active); AutoAttack's acceptance rule (within eps, misclassified,
targets in order) against the single runs it is made of."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import linprog

from msd_tf.attacks import fab
from msd_tf.evaluation import adapters, checks, suite
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, norms_of, small_cnn

DUAL = {"linf": 1, "l2": 2, "l1": np.inf}  # ||w||_dual: the distance is |f(x)| / ||w||_dual
ORD = {"linf": np.inf, "l2": 2, "l1": 1}


def _lp_min_norm(t, w, b, norm):
    """min ||d||_p (l_1 or l_inf) s.t. w.(t + d) = b, 0 <= t + d <= 1, as a linear
    program in d = u - v (u, v >= 0; l_inf with one more variable s >= u_i, v_i).
    Returns (optimum, d) or (None, None) if infeasible."""
    n = len(t)
    bounds = list(zip(np.zeros(n), 1 - t)) + list(zip(np.zeros(n), t))
    a_eq = np.r_[w, -w][None]
    if norm == "l1":
        res = linprog(np.ones(2 * n), A_eq=a_eq, b_eq=[b - w @ t], bounds=bounds,
                      method="highs")
    else:
        eye, zero = np.eye(n), np.zeros((n, n))
        a_ub = np.block([[eye, zero, -np.ones((n, 1))], [zero, eye, -np.ones((n, 1))]])
        res = linprog(np.r_[np.zeros(2 * n), 1.0], A_ub=a_ub, b_ub=np.zeros(2 * n),
                      A_eq=np.c_[a_eq, [[0.0]]], b_eq=[b - w @ t],
                      bounds=bounds + [(0, None)], method="highs")
    if res.status == 2:
        return None, None
    assert res.status == 0, res.message
    return res.fun, res.x[:n] - res.x[n:2 * n]


def _bisection_l2(t, w, b):
    """min ||d||_2 s.t. w.(t + d) = b in the box, by its optimality condition
    d = clip(-a s w, -t, 1 - t) (s = sign(w.t - b), a >= 0) and bisection on a.
    None if even a -> inf does not reach the hyperplane."""
    c = w @ t - b
    at = lambda a: np.clip(-a * np.sign(c) * w, -t, 1 - t)  # noqa: E731
    if abs(w @ at(1e9)) < abs(c):
        return None
    lo, hi = 0.0, 1e9
    for _ in range(2000):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if abs(w @ at(mid)) < abs(c) else (lo, mid)
    return at(hi)


def _instances(rows=120, n=7, seed=0):
    """Random small instances: points with coordinates on the faces, normals with zeros,
    offsets on both sides; one point on its hyperplane and one zero normal."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=(rows, n))
    t[rng.uniform(size=t.shape) < 0.2] = 0.0
    t[rng.uniform(size=t.shape) < 0.2] = 1.0
    w = rng.normal(size=(rows, n))
    w[rng.uniform(size=w.shape) < 0.15] = 0.0
    b = np.einsum("ij,ij->i", w, t) + 0.6 * rng.normal(size=rows)
    b[0] = w[0] @ t[0]  # already on the hyperplane
    w[1] = 0.0  # no hyperplane to move to
    return t, w, b


def _corner(t, w, b):
    """Where the box misses the hyperplane: every coordinate (w_i != 0) to the face that
    lowers |w.(t + d) - b|."""
    lower = np.sign(w @ t - b) * w  # > 0: the coordinate moves down to 0
    return np.where(lower > 0, -t, np.where(lower < 0, 1 - t, 0.0))


@pytest.mark.parametrize("norm", ["l1", "linf"])
def test_projection_onto_hyperplane_in_box_matches_a_linear_program(norm):
    t, w, b = _instances(seed={"l1": 0, "linf": 1}[norm])
    d = fab.project_onto_hyperplane(tf.constant(t), tf.constant(w), tf.constant(b),
                                    norm=norm).numpy()  # float64 throughout
    infeasible = 0
    for i in range(len(t)):
        optimum, _ = _lp_min_norm(t[i], w[i], b[i], norm)
        if optimum is None:
            infeasible += 1
            np.testing.assert_allclose(d[i], _corner(t[i], w[i], b[i]), atol=1e-12)
            continue
        assert np.linalg.norm(d[i], ORD[norm]) == pytest.approx(optimum, abs=1e-9)
        assert w[i] @ (t[i] + d[i]) == pytest.approx(b[i], abs=1e-9)
        assert np.all(t[i] + d[i] >= -1e-12) and np.all(t[i] + d[i] <= 1 + 1e-12)
    assert 2 < infeasible < len(t) // 2  # both cases are exercised
    np.testing.assert_allclose(d[:2], 0.0, atol=1e-12)  # on the hyperplane; w = 0


def test_l2_projection_onto_hyperplane_in_box_matches_a_bisection():
    t, w, b = _instances(seed=2)
    d = fab.project_onto_hyperplane(tf.constant(t), tf.constant(w), tf.constant(b),
                                    norm="l2").numpy()
    for i in range(len(t)):
        want = _bisection_l2(t[i], w[i], b[i])
        want = _corner(t[i], w[i], b[i]) if want is None else want
        np.testing.assert_allclose(d[i], want, atol=1e-9)


def _two_class(w, bias):
    """logits [0, w.x - bias]: class 1 iff w.x > bias."""
    w_t = tf.constant(w.ravel(), tf.float32)

    def model(v):
        score = tf.reduce_sum(tf.reshape(v, [tf.shape(v)[0], -1]) * w_t, axis=1)
        return tf.stack([tf.zeros_like(score), score - bias], axis=1)

    return model


@tf.function(autograph=False)
def _run(model, x, y, target, threat):
    """One FAB run (`fab.fab_run_delta`), compiled: `(delta, norm found)`."""
    out = fab.fab_run_delta(model, x, y, target, threat)
    return out.delta, out.loss


def _free_minimizer(w, gap, norm):
    """The smallest perturbation raising w.x by `gap` (`[B]`, > 0) without the box:
    sign(w) gap / ||w||_1 (l_inf), w gap / ||w||_2^2 (l_2), the largest |w_j| alone
    (l_1). `w` is `[n]` or `[B, n]`."""
    w = np.broadcast_to(w, (len(gap), np.shape(w)[-1]))
    if norm == "linf":
        return np.sign(w) * (gap / np.abs(w).sum(1))[:, None]
    if norm == "l2":
        return w * (gap / (w * w).sum(1))[:, None]
    j = np.abs(w).argmax(1)
    d = np.zeros(w.shape)
    d[np.arange(len(w)), j] = gap / w[np.arange(len(w)), j]
    return d


def _fab_on_a_line(steps=100, eta=1.05, beta=0.9, alpha_max=0.1):
    """FAB's iteration where every projection points along one line (a linear model,
    box inactive), in units of the distance to the boundary: from s = 0, project s and
    0 onto 1, mix, overshoot; beyond 1 is adversarial (kept if smallest, then stepped
    back by beta). Returns the smallest adversarial position. The defaults are
    AutoAttack's (fab_base.py), written here independently of `fab`'s constants."""
    s, best = 0.0, np.inf
    for _ in range(steps):
        a1 = max(abs(1 - s), 1e-8)
        alpha = min(a1 / (a1 + 1.0), alpha_max)
        new = (s + eta * (1 - s)) * (1 - alpha) + eta * alpha
        if new > 1:
            best, s = min(best, new), beta * new
        else:
            s = new
    return best


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_fab_t_finds_the_distance_to_a_linear_boundary(norm):
    # x around 0.5 at distances 0.01 .. 0.2 (l_2) from w.x = 0, class 0: the box is not
    # active and the smallest adversarial perturbation is |w.x| / ||w||_dual. FAB's
    # overshoot and backward steps end 0.52% above it, as its iteration on a line
    # (AutoAttack's eta, beta) predicts.
    rng = np.random.default_rng(3)
    n, batch = 20, 6
    w = rng.normal(size=n)
    x = 0.5 - (0.5 * w.sum() + np.linspace(0.01, 0.2, batch) * np.linalg.norm(w))[:, None] \
        * w[None] / (w @ w)
    x = x.astype(np.float32).reshape(batch, 4, 5, 1)
    gap = np.abs(x.reshape(batch, -1) @ w)
    want = gap / np.linalg.norm(w, DUAL[norm])
    free = x.reshape(batch, -1) + _free_minimizer(w, gap, norm)
    assert free.min() > 0 and free.max() < 1  # the box is not active
    model, y = _two_class(w, 0.0), np.zeros(batch, np.int32)
    x_adv = fab.fab_t(model, x, y, ThreatModel(norm, 100.0, 0.1, 100)).numpy()
    got = norms_of(x_adv, x)[norm]
    assert np.all(got >= want * (1 - 1e-4)) and np.all(got <= want * 1.006), got / want
    np.testing.assert_allclose(got, want * _fab_on_a_line(), rtol=1e-4)
    assert np.all(model(x_adv).numpy().argmax(1) == 1)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_a_run_towards_each_target_class_of_a_multiclass_linear_model(norm):
    # Five affine classes; each example's label y and target t compete, the other three
    # sit 50 below (never the argmax nearby): a run towards t ends at the distance to
    # the hyperplane z_t = z_y, |f| / ||w_t - w_y||_dual.
    rng = np.random.default_rng(4)
    n, batch, classes = 16, 10, 5
    weights = rng.normal(size=(classes, n)).astype(np.float32)
    y = np.arange(batch, dtype=np.int32) % classes
    t = (y + 1 + np.arange(batch) % (classes - 1)).astype(np.int32) % classes
    x = rng.uniform(0.4, 0.6, size=(batch, n)).astype(np.float32)
    diff = weights[t] - weights[y]
    # Distances 0.03 .. 0.3 from x in [0.4, 0.6]: no coordinate moves more than that.
    want = np.linspace(0.03, 0.3, batch)
    margin = (x * diff).sum(1) + want * np.linalg.norm(diff, DUAL[norm], axis=1)
    free = x + _free_minimizer(diff, margin - (x * diff).sum(1), norm)
    assert free.min() > 0 and free.max() < 1  # the box is not active
    offsets = np.full((batch, classes), -50.0, np.float32)  # per example (rows fixed)
    offsets[np.arange(batch), y], offsets[np.arange(batch), t] = 0.0, -margin
    w_t, o_t = tf.constant(weights), tf.constant(offsets)

    def model(v):
        return tf.matmul(tf.reshape(v, [batch, n]), w_t, transpose_b=True) + o_t

    delta, found = _run(model, tf.constant(x), tf.constant(y), tf.constant(t),
                        ThreatModel(norm, 100.0, 0.1, 100))
    got = found.numpy()
    assert np.all(got >= want * (1 - 1e-4)) and np.all(got <= want * 1.006), got / want
    x_adv = x + delta.numpy()
    np.testing.assert_array_equal(model(x_adv).numpy().argmax(1), t)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_with_the_box_active_fab_finds_the_constrained_optimum(norm):
    # The four coordinates of largest |w| sit at the face w points to: the box stops
    # them, so the smallest perturbation to w.x = bias is 2 to 7 times the unconstrained
    # distance; the references are a linear program (l_1, l_inf) and a
    # bisection (l_2).
    rng = np.random.default_rng(5)
    n, batch = 12, 8
    w = rng.normal(size=n)
    x = rng.uniform(0.2, 0.8, size=(batch, n))
    top = np.argsort(-np.abs(w))[:4]
    x[:, top] = np.where(w[top] > 0, 1.0, 0.0)
    bias = float(np.max(x @ w) + 0.5)  # class 0, margins 0.5 and more
    x = x.astype(np.float32)
    if norm == "l2":
        refs = [_bisection_l2(x[i].astype(np.float64), w, bias) for i in range(batch)]
        want = np.array([np.linalg.norm(r) for r in refs])
    else:
        want = np.array([_lp_min_norm(x[i].astype(np.float64), w, bias, norm)[0]
                         for i in range(batch)])
    free = np.abs(x.astype(np.float64) @ w - bias) / np.linalg.norm(w, DUAL[norm])
    assert np.all(want > 1.5 * free)  # the box is active
    delta, found = _run(_two_class(w, bias), tf.constant(x), tf.zeros(batch, tf.int32),
                        tf.ones(batch, tf.int32), ThreatModel(norm, 100.0, 0.1, 100))
    got = found.numpy()
    assert np.all(got >= want * (1 - 1e-4)) and np.all(got <= want * 1.02), got / want
    x_adv = x + delta.numpy()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("norm, eps", [("linf", 0.01), ("l2", 0.15), ("l1", 0.8)])
def test_fab_t_keeps_what_a_run_found_within_eps_in_target_order(norm, eps):
    # AutoAttack's rule, checked against the single runs it is made of: one run per
    # target class (the 2nd, 3rd, ... largest clean logit), a run independent of eps;
    # an example is broken iff some run found a misclassified point within eps, and it
    # keeps the first such run's point. Misclassified inputs are left as they are.
    model = small_cnn(seed=6)
    x, _ = digits(12, seed=7)
    y = model(x).numpy().argmax(1).astype(np.int32)
    y[:2] = (y[:2] + 1) % 10
    threat, targets = ThreatModel(norm, eps, 0.1, 15), 3
    x_adv = fab.fab_t(model, x, y, threat, n_targets=targets).numpy()
    ranked = np.argsort(-model(x).numpy(), axis=1, kind="stable")
    deltas, sizes = [], []
    for k in range(targets):
        delta, found = _run(model, tf.constant(x), tf.constant(y),
                            tf.constant(ranked[:, k + 1], tf.int32), threat)
        deltas.append(delta.numpy())
        sizes.append(np.where(np.isfinite(found.numpy()), norms_of(x + delta.numpy(), x)[norm],
                              np.inf))
    sizes = np.array(sizes)
    within = sizes <= eps
    within[:, :2] = False  # not attacked
    broken = within.any(0)
    assert 0 < broken.sum() < len(x) - 2  # some broken, some not
    changed = np.any(x_adv != x, axis=(1, 2, 3))
    np.testing.assert_array_equal(changed, broken)
    first = within.argmax(0)
    for i in np.flatnonzero(broken):
        np.testing.assert_allclose(x_adv[i], np.clip(x[i] + deltas[first[i]][i], 0, 1),
                                   atol=1e-6)
    n = norms_of(x_adv, x)[norm]
    assert np.all(n <= eps * (1 + 1e-6)) and x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.all(model(x_adv).numpy().argmax(1)[broken] != y[broken])


def test_the_suite_result_is_sound_and_inside_the_radius():
    # Through the evaluation (`suite.run_attack`, then `checks.verify`'s fresh forward
    # pass and NumPy norms): every example FAB-T claims is misclassified, in the box and
    # within eps.
    model = small_cnn(seed=8)
    x, _ = digits(10, seed=9)
    y = model(x).numpy().argmax(1).astype(np.int32)
    logits_fn = lambda v: model(v, training=False)  # noqa: E731
    for norm, eps in (("linf", 0.02), ("l2", 0.3), ("l1", 2.0)):
        spec = suite.AttackSpec(f"fab_t_{norm}", "fab_t", norm, eps, 9, steps=10)
        x_adv, found = adapters.run_attack(spec, logits_fn, x, y, seed=0)
        sound, norms, rejected = checks.verify(logits_fn, x, y, x_adv, found, norm=norm)
        assert not rejected.any() and found.any()
        assert np.all(norms[sound] <= eps * (1 + 1e-6))
        np.testing.assert_array_equal(x_adv[~found], x[~found])


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.5), ("l1", 2.0)])
def test_restarts_start_at_half_eps_and_are_seeded(norm, eps):
    x = tf.fill([3, 6, 6, 1], 0.5)
    start = fab._random_start(x, norm, eps, tf.constant([1, 2], tf.int64)).numpy()
    np.testing.assert_allclose(norms_of(start, x.numpy())[norm], eps / 2, rtol=1e-5)
    model = small_cnn(seed=10)
    xs, _ = digits(6, seed=11)
    ys = model(xs).numpy().argmax(1).astype(np.int32)
    threat = ThreatModel(norm, eps, 0.1, 5, restarts=2)
    a = fab.fab_t(model, xs, ys, threat, seed=4, n_targets=2).numpy()
    np.testing.assert_allclose(fab.fab_t(model, xs, ys, threat, seed=4, n_targets=2).numpy(),
                               a, atol=1e-6)


def test_zero_gradient_and_empty_batch():
    flat = lambda v: tf.zeros([tf.shape(v)[0], 3]) + tf.constant([1.0, 0.0, 0.0])  # noqa: E731
    x = np.full((2, 4, 4, 1), 0.5, np.float32)
    y = np.zeros(2, np.int32)
    for norm in ("linf", "l2", "l1"):
        out = fab.fab_t(flat, x, y, ThreatModel(norm, 1.0, 0.1, 5)).numpy()
        np.testing.assert_array_equal(out, x)  # nothing found, no NaN
        assert fab.fab_t(flat, x[:0], y[:0], ThreatModel(norm, 1.0, 0.1, 5)).shape[0] == 0


def test_autoattack_and_strong_suites_run_fab_t_between_apgd_t_and_square():
    # fra31/auto-attack, set_version("standard"): apgd-ce, apgd-t, fab-t, square; FAB-T
    # with 9 target classes, 1 run each, 100 iterations, in every norm.
    specs = suite.autoattack_suite("mnist")
    for norm in ("linf", "l2", "l1"):
        assert [s.kind for s in specs if s.norm == norm] == [
            "apgd_ce", "apgd_t", "fab_t", "square"]
    fabs = [s for s in specs if s.kind == "fab_t"]
    assert [(s.restarts, s.steps, s.only_robust) for s in fabs] == [(9, 100, True)] * 3
    assert [s.eps for s in fabs] == [0.3, 2.0, 10.0]
    strong = suite.strong_additions("mnist")
    for norm in ("linf", "l2", "l1"):
        assert [s.kind for s in strong if s.norm == norm][:4] == [
            "apgd_ce", "apgd_t", "fab_t", "square"]
