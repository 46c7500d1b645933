"""msd_tf.balls: one class per norm, checked against the NumPy norms of
evaluation/checks.py (the independent reference) and first-order optimality."""

import numpy as np
import pytest
import tensorflow as tf

from msd_tf import balls, threats
from msd_tf.evaluation.checks import lp_norms
from msd_tf.seeding import as_seed

DUAL = {"linf": 1, "l2": 2}  # the dual norm's order: a steepest step gains alpha * ||g||_*


def test_every_norm_has_one_ball():
    assert list(balls.BALLS) == list(threats.NORMS)
    assert all(balls.get(n).name == n for n in threats.NORMS)
    with pytest.raises(ValueError, match="norm"):
        balls.get("l3")


@pytest.mark.parametrize("norm", threats.NORMS)
def test_norm_matches_the_float64_reference(norm):
    t = np.random.default_rng(0).normal(size=(5, 28, 28, 1)).astype(np.float32)
    got = balls.get(norm).norm(tf.constant(t)).numpy()
    np.testing.assert_allclose(got, lp_norms(t, np.zeros_like(t), norm), rtol=1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_steepest_step_has_length_alpha_and_gains_the_dual_norm(norm):
    rng = np.random.default_rng(1)
    g = rng.normal(size=(4, 6, 6, 1)).astype(np.float32)
    threat = threats.ThreatModel(norm=norm, eps=1.0, alpha=0.25, steps=1)
    v = balls.get(norm).steepest_step(tf.constant(g), tf.constant(g * 0 + 0.5), threat,
                                      as_seed(0)).numpy()
    np.testing.assert_allclose(lp_norms(v, 0 * v, norm), 0.25, rtol=1e-5)
    gain = (g * v).reshape(4, -1).sum(1)
    dual = np.linalg.norm(g.reshape(4, -1).astype(np.float64), ord=DUAL[norm], axis=1)
    np.testing.assert_allclose(gain, 0.25 * dual, rtol=1e-5)


@pytest.mark.parametrize("norm, eps", [("linf", 0.3), ("l2", 2.0), ("l1", 10.0)])
def test_random_start_and_projection_land_in_ball_and_box(norm, eps):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.uniform(size=(64, 28, 28, 1)).astype(np.float32))
    threat = threats.ThreatModel(norm=norm, eps=eps, alpha=eps / 10, steps=1)
    ball = balls.get(norm)
    start = ball.random_start(x, threat, as_seed(3)).numpy()
    n = lp_norms(start, 0 * start, norm)
    assert np.all(n <= eps * (1 + 1e-5)) and n.std() > 0
    far = tf.constant(rng.normal(size=x.shape).astype(np.float32) * 5 * eps)
    d = ball.project_with_box(x, far, threat).numpy()
    assert np.all(lp_norms(d, 0 * d, norm) <= eps * (1 + 1e-5))
    assert np.all((x.numpy() + d >= -1e-6) & (x.numpy() + d <= 1 + 1e-6))


def test_l2_has_a_unit_step_and_l1_says_it_has_none():
    g = tf.constant(np.random.default_rng(4).normal(size=(3, 10)).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(balls.get("l2").unit_step(g).numpy(), axis=1),
                               1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="apgd_l1"):
        balls.get("l1").unit_step(g)
