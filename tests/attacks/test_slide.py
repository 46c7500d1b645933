"""SLIDE (Tramer and Boneh 2019) against hand-made gradients and a NumPy re-implementation
of their `delta_update` for "l1", written the slow way (per-example loops, np.percentile,
the l_1 projection by bisection, project then clip)."""

import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks import ATTACKS, slide, slide_delta
from msd_tf.attacks.slide import percentile, random_start, slide_direction, slide_update
from msd_tf.seeding import INIT_STREAM, as_seed, fold
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, linear_loss, norms_of, small_cnn


def _direction_reference(g, x_adv, q):
    """Tramer and Boneh's direction, one example at a time, in float64."""
    out = np.zeros(g.shape, np.float64)
    for b in range(len(g)):
        gb = np.asarray(g[b], np.float64).copy()
        xb = np.asarray(x_adv[b], np.float64)
        gb[((xb == 1) & (gb > 0)) | ((xb == 0) & (gb < 0))] = 0
        thr = np.percentile(np.abs(gb), q)
        tied = (np.abs(gb) >= thr).astype(np.float64)
        out[b] = np.sign(gb) * tied / tied.sum()
    return out


def _project_l1_reference(v, eps):
    """Euclidean projection onto the l_1 ball by bisection on the threshold (float64)."""
    v = np.asarray(v, np.float64)
    if np.abs(v).sum() <= eps:
        return v
    lo, hi = 0.0, np.abs(v).max()
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(np.abs(v) - mid, 0).sum() > eps else (lo, mid)
    return np.sign(v) * np.maximum(np.abs(v) - hi, 0)


def _slide_reference(x, delta, grad_of, *, eps, a, q, steps):
    """`steps` iterations of their update: step, project onto the l_1 ball, then clip
    to the box (`np.clip(delta, 0 - x, 1 - x)`); the state in float32 as theirs.
    Returns the delta and whether the projection was ever active."""
    delta, projected_once = delta.astype(np.float32).copy(), False
    for _ in range(steps):
        x_adv = np.clip(x + delta, 0, 1)
        e = _direction_reference(grad_of(x_adv), x_adv, q)
        moved = delta.astype(np.float64) + a * e
        projected_once |= bool(np.any(np.abs(moved).sum(1) > eps))
        projected = np.stack([_project_l1_reference(m, eps) for m in moved])
        delta = np.clip(projected.astype(np.float32), 0 - x, 1 - x)
    return delta, projected_once


@pytest.mark.parametrize("n, q", [(49, 99.0), (49, 90.0), (49, 50.0), (49, 0.0), (49, 100.0),
                                  (784, 99.0), (1, 99.0), (10, 37.5)])
def test_percentile_is_numpys(n, q):
    rng = np.random.default_rng(n)
    values = np.abs(rng.normal(size=(5, n))).astype(np.float32)
    values[0] = 1.0  # all equal
    values[1, : n // 2] = 0.0  # half zeros
    got = percentile(tf.constant(values), q).numpy()
    np.testing.assert_allclose(got, np.percentile(values.astype(np.float64), q, axis=1),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("q", [99.0, 90.0, 75.0, 50.0, 0.0])
def test_direction_picks_what_numpys_percentile_picks(q):
    # Distinct magnitudes 0.25, 0.5, ..., 12.25 (exact in float32), random signs.
    rng = np.random.default_rng(0)
    g = np.stack([rng.permutation(np.arange(1, 50)) * 0.25 * rng.choice([-1, 1], 49)
                  for _ in range(3)]).astype(np.float32).reshape(3, 7, 7, 1)
    x_adv = np.full_like(g, 0.5)
    e = slide_direction(tf.constant(g), tf.constant(x_adv), q=q).numpy()
    np.testing.assert_allclose(e, _direction_reference(g, x_adv, q), atol=1e-7)
    np.testing.assert_allclose(np.abs(e).reshape(3, -1).sum(1), 1.0, rtol=1e-6)
    # q = 99 of 49 values: the threshold lies between the two largest (rank 47.52),
    # so only the largest moves, by the whole step.
    if q == 99.0:
        assert np.all((np.abs(e) > 0).reshape(3, -1).sum(1) == 1)
        top = np.abs(g).reshape(3, -1).argmax(1)
        np.testing.assert_array_equal(e.reshape(3, -1)[np.arange(3), top],
                                      np.sign(g.reshape(3, -1)[np.arange(3), top]))


def test_ties_at_the_threshold_share_the_step_equally():
    g = np.array([[3.0, -3.0, 3.0, 1.0, 2.0, 0.5, -1.5]], np.float32)
    e = slide_direction(tf.constant(g), tf.constant(np.full_like(g, 0.5)), q=99.0).numpy()
    np.testing.assert_allclose(e, [[1 / 3, -1 / 3, 1 / 3, 0, 0, 0, 0]], atol=1e-7)


def test_face_masking_zeroes_only_outward_gradients():
    # Pixel 0 at 1 pushed up and pixel 2 at 0 pushed down cannot move (gradient zeroed);
    # pixel 1 at 1 pushed down and pixel 3 at 0 pushed up can, and carry the step.
    g = np.array([[5.0, -4.0, -5.0, 4.0, 1.0, -2.0]], np.float32)
    x_adv = np.array([[1.0, 1.0, 0.0, 0.0, 0.5, 0.5]], np.float32)
    e = slide_direction(tf.constant(g), tf.constant(x_adv), q=99.0).numpy()
    np.testing.assert_allclose(e, [[0, -0.5, 0, 0.5, 0, 0]], atol=1e-7)
    np.testing.assert_allclose(e, _direction_reference(g, x_adv, 99.0), atol=1e-7)


def test_zero_and_mostly_zero_gradients():
    x_adv = tf.fill([2, 784], 0.5)
    assert np.all(slide_direction(tf.zeros([2, 784]), x_adv).numpy() == 0)  # no NaN
    # Three non-zero coordinates of 784: the 99th percentile is 0, every coordinate is
    # "at or above" it and takes 1/784 of the step; only the three move (their code's
    # behaviour: ||e||_1 = 3/784, not 1).
    g = np.zeros((2, 784), np.float32)
    g[:, [3, 100, 700]] = [2.0, -1.0, 0.5]
    e = slide_direction(tf.constant(g), x_adv, q=99.0).numpy()
    np.testing.assert_allclose(e, _direction_reference(g, np.full_like(g, 0.5), 99.0),
                               atol=1e-9)
    np.testing.assert_allclose(np.abs(e).sum(1), 3 / 784, rtol=1e-6)


def test_update_projects_onto_the_ball_then_clips_to_the_box():
    # delta + a * e = (0.3, 0.3) with x = (0.9, 0.5) and eps = 0.3. Project, then clip:
    # (0.15, 0.15) -> (0.1, 0.15). Clip, then project (Maini et al.'s order) would give
    # (0.1, 0.3) -> (0.05, 0.25).
    x = tf.constant([[0.9, 0.5]])
    new = slide_update(x, tf.zeros_like(x), tf.constant([[1.0, 1.0]]), eps=0.3,
                       step_size=0.6).numpy()
    np.testing.assert_allclose(new, [[0.1, 0.15]], atol=1e-6)
    assert not np.allclose(new, [[0.05, 0.25]], atol=1e-3)


def _linear_case(seed):
    """Flat 'images' with pixels at 0 and 1, a linear score w.x whose logit never wins
    (so no example is ever fooled and every iteration runs): the loss `linear_loss`
    has gradient w everywhere."""
    rng = np.random.default_rng(seed)
    n, batch = 784, 3
    w = rng.normal(size=n).astype(np.float32)
    x = rng.uniform(size=(batch, n)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.3] = 0.0
    x[rng.uniform(size=x.shape) < 0.1] = 1.0
    w_t = tf.constant(w)

    def model(v):
        score = tf.reduce_sum(v * w_t, axis=1)
        return tf.stack([tf.zeros_like(score), score - 1000.0], axis=1)

    return model, x, np.zeros(batch, np.int32), w


@pytest.mark.parametrize("start", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_the_numpy_reference_on_a_linear_model(start, seed):
    model, x, y, w = _linear_case(seed)
    # 30 steps of a = 0.5 in the ball of radius 10: pixels reach the faces (masking)
    # and, from step 20 on, the ball's surface (projection).
    threat = ThreatModel("l1", 10.0, 0.5, 30, random_start=start)
    got = slide(model, x, y, threat, seed=seed, loss_fn=linear_loss).numpy() - x
    delta0 = np.zeros_like(x)
    if start:  # the run's start: the attack's seed stream, run 0
        delta0 = random_start(tf.constant(x), 10.0,
                              fold(fold(as_seed(seed), 0), INIT_STREAM)).numpy()
        assert np.all(np.abs(delta0).sum(1) <= 10.0 * (1 + 1e-5))
    want, projected = _slide_reference(x, delta0, lambda x_adv: np.broadcast_to(w, x_adv.shape),
                            eps=10.0, a=0.5, q=99.0, steps=30)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert projected  # the ball's surface was reached (clipping after it shrinks the norm)
    at_face = ((x + want >= 1) & (w > 0)) | ((x + want <= 0) & (w < 0))
    assert at_face.any()  # the masking was exercised


def test_random_start_lies_on_the_sphere_before_clipping():
    x = np.full((4, 28, 28, 1), 0.5, np.float32)  # no clipping: |delta_i| << 0.5
    d = random_start(tf.constant(x), 10.0, as_seed(3)).numpy()
    np.testing.assert_allclose(np.abs(d).reshape(4, -1).sum(1), 10.0, rtol=1e-5)
    x_edge, _ = digits(4, seed=1)  # many pixels at 0: clipping shrinks the norm
    d = random_start(tf.constant(x_edge), 10.0, as_seed(3)).numpy()
    assert np.all(x_edge + d >= 0) and np.all(x_edge + d <= 1)
    assert np.all(np.abs(d).reshape(4, -1).sum(1) <= 10.0 * (1 + 1e-6))


def test_in_ball_and_box_with_restarts_and_same_as_the_graph_function():
    model = small_cnn(seed=2)
    x, y = digits(12, seed=4)
    threat = ThreatModel("l1", 10.0, 2.0, 8, restarts=3, random_start=True)
    x_adv = slide(model, x, y, threat, seed=5).numpy()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.all(norms_of(x_adv, x)["l1"] <= 10.0 * (1 + 1e-5))
    eager = slide_delta(model, tf.constant(x), tf.constant(y), threat, as_seed(5)).delta
    np.testing.assert_allclose(x_adv, np.clip(x + eager.numpy(), 0, 1), atol=1e-5)
    assert ATTACKS["slide"].norms == ("l1",)


def test_other_norms_are_refused():
    model = small_cnn()
    x, y = digits(2)
    with pytest.raises(ValueError, match="l1 ball only"):
        slide(model, x, y, ThreatModel("l2", 2.0, 0.1, 5))
    with pytest.raises(ValueError, match="`q`"):
        slide(model, x, y, ThreatModel("l1", 10.0, 0.5, 5), q=120)
