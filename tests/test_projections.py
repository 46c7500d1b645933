import numpy as np
import pytest
from scipy import optimize

from msd_tf import projections
from tests.attacks.helpers import l1_box_reference


def _l1_reference(v, eps):
    """Projection onto the l1 ball by bisection on the threshold, float64, one example."""
    v = np.asarray(v, np.float64).ravel()
    if np.abs(v).sum() <= eps:
        return v
    lo, hi = 0.0, np.abs(v).max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(np.abs(v) - mid, 0).sum() > eps:
            lo = mid
        else:
            hi = mid
    return np.sign(v) * np.maximum(np.abs(v) - hi, 0)


def _batch(shape, seed, kind):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=shape).astype(np.float32)
    if kind == "ties":
        v = np.round(v * 2) / 2  # many equal magnitudes
    elif kind == "zeros":
        v[:, ...] *= rng.uniform(size=shape) < 0.1  # mostly zeros
    return v


@pytest.mark.parametrize("shape", [(16, 28, 28, 1), (8, 32, 32, 3), (5, 7)])
@pytest.mark.parametrize("kind", ["normal", "ties", "zeros"])
def test_project_l1_matches_bisection_reference(shape, kind):
    v = _batch(shape, 0, kind)
    l1 = np.abs(v).reshape(len(v), -1).sum(1)
    # Per-example radii: some inside the ball (eps > norm), some far outside.
    eps = (l1 * np.linspace(0.05, 1.5, len(v))).astype(np.float32)
    got = projections.project_l1(v, eps).numpy()
    for b in range(len(v)):
        want = _l1_reference(v[b], eps[b]).reshape(v[b].shape)
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5 * max(1, eps[b]))
        assert np.abs(got[b]).sum() <= eps[b] * (1 + 1e-5) + 1e-6
        if l1[b] <= eps[b]:
            np.testing.assert_array_equal(got[b], v[b])  # inside: unchanged


@pytest.mark.parametrize("k", [1, 3, 8])
def test_project_l1_partial_sort_equals_the_full_sort(k):
    # Rows keeping 1 to ~60 coordinates: the k largest magnitudes decide the threshold
    # when fewer than k stay above it; otherwise the batch sorts in full. Both paths
    # give the result of the full sort (k >= n) and of the float64 reference.
    v = _batch((12, 200), 5, "normal")
    l1 = np.abs(v).sum(1)
    eps = (l1 * np.geomspace(0.002, 0.6, 12)).astype(np.float32)
    partial = projections.project_l1(v, eps, k=k).numpy()
    full = projections.project_l1(v, eps, k=1000).numpy()
    np.testing.assert_allclose(partial, full, atol=1e-6)
    kept = np.count_nonzero(full, axis=1)
    assert kept.min() <= 2 and kept.max() > 8  # both paths are taken
    for b in range(len(v)):
        np.testing.assert_allclose(full[b], _l1_reference(v[b], eps[b]), atol=1e-5)
    few = kept < k  # a batch of rows the partial sort decides alone
    if few.any():
        np.testing.assert_allclose(projections.project_l1(v[few], eps[few], k=k).numpy(),
                                   full[few], atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_project_l1_box_partial_sort_equals_all_coordinates(k):
    # As for project_l1: rows whose threshold the k largest |v| decide, and rows that
    # need all coordinates, give what bisecting over all of them gives (k >= n), and
    # the float64 reference.
    rng = np.random.default_rng(6)
    x = rng.uniform(0, 1, (12, 200)).astype(np.float32)
    x[:, :60] = 0.0
    v = rng.normal(size=(12, 200)).astype(np.float32)
    eps = np.geomspace(0.05, 40.0, 12).astype(np.float32)
    partial = projections.project_l1_box(x, v, eps, k=k).numpy()
    full = projections.project_l1_box(x, v, eps, k=1000).numpy()
    np.testing.assert_allclose(partial, full, atol=1e-6)
    kept = np.count_nonzero(full, axis=1)
    assert kept.min() <= 2 and kept.max() > 8  # both paths are taken
    for b in range(len(v)):
        np.testing.assert_allclose(full[b], l1_box_reference(v[b], x[b], eps[b]), atol=1e-5)


def test_project_l1_idempotent_and_optimal():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(6, 50)).astype(np.float32) * 3
    eps = 5.0
    p = projections.project_l1(v, eps).numpy()
    np.testing.assert_allclose(projections.project_l1(p, eps).numpy(), p, atol=1e-5)
    # Optimality: no feasible point is closer; <v - P(v), z - P(v)> <= 0 for feasible z.
    for _ in range(200):
        z = rng.normal(size=v.shape)
        z *= eps / np.abs(z).sum(1, keepdims=True) * rng.uniform(0, 1, (len(v), 1))
        assert np.all(np.linalg.norm(v - p, axis=1) <= np.linalg.norm(v - z, axis=1) + 1e-4)
        assert np.all(((v - p) * (z - p)).sum(1) <= 1e-3)


def test_project_l1_edge_cases():
    v = np.array([[3.0, -1.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_array_equal(projections.project_l1(v, 0.0).numpy(), np.zeros_like(v))
    got = projections.project_l1(v, 1.0).numpy()
    # Hand-computed: [3,-1,.5] -> theta 2 -> [1,0,0]; ties [1,1,1] -> theta 2/3.
    np.testing.assert_allclose(got, [[1, 0, 0], [0, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-6)
    assert projections.project_l1(np.zeros((0, 4), np.float32), 1.0).shape == (0, 4)


def test_project_linf_and_l2_closed_forms():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(10, 4, 4, 3)).astype(np.float32)
    eps = rng.uniform(0.1, 8, size=10).astype(np.float32)
    np.testing.assert_allclose(projections.project_linf(v, eps).numpy(),
                               np.clip(v, -eps[:, None, None, None], eps[:, None, None, None]))
    norm = np.linalg.norm(v.reshape(10, -1), axis=1)
    want = v * (eps / np.maximum(eps, norm))[:, None, None, None]
    np.testing.assert_allclose(projections.project_l2(v, eps).numpy(), want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(projections.project_l2(np.zeros_like(v), 0.0).numpy()))


def test_project_box():
    x = np.array([[0.0, 0.5, 1.0]], np.float32)
    d = np.array([[-0.2, 0.7, 0.3]], np.float32)
    np.testing.assert_allclose(projections.project_box(x, d).numpy(), [[0.0, 0.5, 0.0]])


def _l1_box_solver(v, x, eps):
    """Independent reference: SLSQP on d = p - q, p, q >= 0 within the box."""
    n = len(v)
    up, down = 1.0 - x, x  # how far each coordinate may move up / down

    def f(z):
        d = z[:n] - z[n:]
        return ((d - v) ** 2).sum(), np.concatenate([2 * (d - v), -2 * (d - v)])

    res = optimize.minimize(
        f, np.zeros(2 * n), jac=True, method="SLSQP",
        bounds=[(0, u) for u in up] + [(0, w) for w in down],
        constraints=[{"type": "ineq", "fun": lambda z: eps - z.sum(),
                      "jac": lambda z: -np.ones(2 * n)}],
        options={"ftol": 1e-14, "maxiter": 500})
    return res.x[:n] - res.x[n:]


@pytest.mark.parametrize("seed", range(6))
def test_project_l1_box_matches_qp_solver(seed):
    rng = np.random.default_rng(seed)
    n = 12
    x = rng.choice([0.0, 1.0, 0.5, 0.05, 0.97], size=(4, n)) * (rng.uniform(size=(4, n)) < 0.7)
    v = rng.normal(size=(4, n)) * 1.5
    eps = np.array([0.5, 2.0, 4.0, 100.0])  # last: only the box binds
    got = projections.project_l1_box(x.astype(np.float32), v.astype(np.float32),
                                     eps.astype(np.float32)).numpy()
    for b in range(4):
        want = _l1_box_solver(v[b], x[b], eps[b])
        np.testing.assert_allclose(got[b], want, atol=2e-4)
        assert np.abs(got[b]).sum() <= eps[b] + 1e-4
        assert np.all(x[b] + got[b] >= -1e-6) and np.all(x[b] + got[b] <= 1 + 1e-6)


def test_project_l1_box_is_closer_than_clip_then_project():
    rng = np.random.default_rng(7)
    x = (rng.uniform(size=(20, 784)) < 0.2).astype(np.float32)  # MNIST-like: mostly 0
    v = rng.normal(size=(20, 784)).astype(np.float32) * 0.3
    exact = projections.project_l1_box(x, v, 10.0).numpy()
    paper = projections.project_l1(projections.project_box(x, v), 10.0).numpy()
    d_exact = np.linalg.norm(exact - v, axis=1)
    d_paper = np.linalg.norm(paper - v, axis=1)
    assert np.all(d_exact <= d_paper + 1e-4)
    # Hand-computed case where the box caps two coordinates at 0.1: the exact
    # projection solves 2 * 0.1 + (0.6 - lam) = 0.5, lam = 0.3; clip-then-project
    # soft-thresholds the clipped [0.1, 0.1, 0.5] at 1/15 instead (farther from v).
    x = np.array([[0.9, 0.9, 0.5]], np.float32)
    v = np.array([[1.0, 1.0, 0.6]], np.float32)
    np.testing.assert_allclose(projections.project_l1_box(x, v, 0.5).numpy(),
                               [[0.1, 0.1, 0.3]], atol=1e-6)
    np.testing.assert_allclose(
        projections.project_l1(projections.project_box(x, v), 0.5).numpy(),
        [[1 / 30, 1 / 30, 0.5 - 1 / 15]], atol=1e-6)


@pytest.mark.parametrize("magnitude", [(1000.0, 1001.0), (1e5, 1e5 + 1), (0.0, 1e6)])
def test_project_l1_stays_in_the_ball_for_large_inputs(magnitude):
    # A float32 running sum of |v| ~ 1e3 (or 1e5) loses the threshold's precision:
    # before the shifted sums the result had l1 norm 1.007-1.028 x eps (20-110 x at 1e5).
    rng = np.random.default_rng(3)
    lo, hi = magnitude
    v = (rng.uniform(lo, hi, (6, 784)) * rng.choice([-1, 1], (6, 784))).astype(np.float32)
    eps = np.array([1.0, 1.0, 10.0, 10.0, 1e-3, 300.0], np.float32)
    got = projections.project_l1(v, eps).numpy()
    for b in range(len(v)):
        assert np.abs(got[b].astype(np.float64)).sum() <= eps[b] * (1 + 1e-6)
        want = _l1_reference(v[b], float(eps[b]))
        # float32 inputs of magnitude m carry m * 6e-8 of absolute precision.
        np.testing.assert_allclose(got[b], want, rtol=1e-3, atol=hi * 2e-7 + 1e-6 * eps[b])


@pytest.mark.parametrize("scale, eps", [(1e6, 10.0), (1.0, 1e-3), (1e3, 1.0), (1.0, 10.0)])
def test_project_l1_box_stays_in_ball_and_box_for_extreme_inputs(scale, eps):
    # Before: ~1% over the ball at |v| ~ 1e6, 1.7e-5 relative at eps = 1e-3.
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (5, 784)).astype(np.float32)
    x[:, :300] = 0.0  # pixels on the box face, as in MNIST
    v = (rng.normal(size=(5, 784)) * scale).astype(np.float32)
    got = projections.project_l1_box(x, v, eps).numpy()
    for b in range(len(v)):
        assert np.abs(got[b].astype(np.float64)).sum() <= eps * (1 + 1e-6)
        assert np.all(x[b] + got[b] >= -1e-6) and np.all(x[b] + got[b] <= 1 + 1e-6)
        want = l1_box_reference(v[b], x[b], eps)
        np.testing.assert_allclose(got[b], want, atol=max(eps * 1e-4, 1e-7))
