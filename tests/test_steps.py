import numpy as np
import pytest

from msd_tf import steps


def test_linf_and_l2_steps_gain_alpha_times_dual_norm():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(6, 5, 5, 2)).astype(np.float32)
    alpha = 0.07
    flat = g.reshape(6, -1)
    v = steps.steepest_step_linf(g, alpha=alpha).numpy().reshape(6, -1)
    np.testing.assert_allclose((v * flat).sum(1), alpha * np.abs(flat).sum(1), rtol=1e-5)
    v = steps.steepest_step_l2(g, alpha=alpha).numpy().reshape(6, -1)
    np.testing.assert_allclose((v * flat).sum(1), alpha * np.linalg.norm(flat, axis=1), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), alpha, rtol=1e-5)


def test_zero_gradient_gives_zero_step_without_nan():
    g = np.zeros((3, 4, 4, 1), np.float32)
    x = np.full_like(g, 0.5)
    for v in (steps.steepest_step_linf(g, alpha=0.1), steps.steepest_step_l2(g, alpha=0.1),
              steps.steepest_step_l1(g, x, alpha=0.8, k=5)):
        v = v.numpy()
        assert np.all(np.isfinite(v)) and np.all(v == 0)


def _l1_reference(g, x_adv, alpha, k, gap):
    """Numpy, one example at a time: top-k allowed |g| by stable sort, alpha/k each."""
    out = np.zeros_like(g)
    for b in range(len(g)):
        gb, xb = g[b].ravel(), x_adv[b].ravel()
        blocked = ((gb < 0) & (xb <= gap)) | ((gb > 0) & (xb >= 1 - gap)) | (xb <= 0) | (xb >= 1)
        mag = np.where(blocked, 0.0, np.abs(gb))
        order = np.argsort(-mag, kind="stable")[:k]
        step = np.zeros_like(gb)
        for i in order:
            if mag[i] > 0:
                step[i] = alpha / k * np.sign(gb[i])
        out[b] = step.reshape(g[b].shape)
    return out


@pytest.mark.parametrize("k", [1, 5, 20])
def test_l1_step_matches_reference_and_respects_restriction(k):
    rng = np.random.default_rng(k)
    g = rng.normal(size=(8, 6, 6, 1)).astype(np.float32)
    # Pixels on the faces, within the gap, and well inside.
    x_adv = rng.choice([0.0, 0.02, 0.5, 0.98, 1.0, 0.3], size=g.shape).astype(np.float32)
    got = steps.steepest_step_l1(g, x_adv, alpha=0.8, k=k, gap=0.05).numpy()
    want = _l1_reference(g, x_adv, 0.8, k, 0.05)
    np.testing.assert_allclose(got, want, atol=1e-7)
    blocked = (((g < 0) & (x_adv <= 0.05)) | ((g > 0) & (x_adv >= 0.95))
               | (x_adv <= 0) | (x_adv >= 1))
    assert np.all(got[blocked] == 0)
    assert np.all(np.abs(got).reshape(8, -1).sum(1) <= 0.8 + 1e-6)


def test_l1_step_ties_move_exactly_k_coordinates():
    g = np.ones((2, 30), np.float32)
    x = np.full_like(g, 0.5)
    v = steps.steepest_step_l1(g, x, alpha=1.0, k=7, k_max=20).numpy()
    assert np.all((v != 0).sum(1) == 7)
    np.testing.assert_allclose(np.abs(v).sum(1), 1.0, rtol=1e-6)


def test_l1_step_with_tensor_k_needs_k_max():
    import tensorflow as tf

    g = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match="k_max"):
        steps.steepest_step_l1(g, g * 0.5, alpha=1.0, k=tf.constant(2))
