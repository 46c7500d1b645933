import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks import mim, mim_delta
from msd_tf.seeding import as_seed
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import linear_loss, linear_problem


def test_mim_reaches_eps_sign_w_on_a_linear_model():
    model, x, y, w = linear_problem()
    x_adv = mim(model, x, y, ThreatModel("linf", 0.3, 0.03, 20), seed=0,
                loss_fn=linear_loss).numpy()
    # The momentum of a constant gradient keeps its sign: MIM reaches eps * sign(w) too.
    np.testing.assert_allclose(x_adv - x, np.broadcast_to(0.3 * np.sign(w), x.shape), atol=1e-5)


def test_mim_attacks_the_linf_ball_only():
    model, x, y, _ = linear_problem()
    with pytest.raises(ValueError, match="l_inf"):
        mim_delta(model, tf.constant(x), tf.constant(y), ThreatModel("l2", 1.0, 0.1, 2),
                  as_seed(0))


def test_mim_follows_its_momentum_where_pgd_follows_the_gradient():
    """A hand-computed case: two pixels at 0.5, loss s(x_1) + x_2 with s rising (slope 1)
    up to x_1 = 0.55 and falling gently (slope -0.2) beyond; l_inf steps of 0.1, eps 0.3.
    Momentum (decay 1, gradients l_1-normalised) keeps climbing x_1 through the gentle
    descent: m = (0.5, 0.5) -> (1/3, 4/3) -> (1/6, 13/6), delta (0.1, 0.1) -> (0.2, 0.2)
    -> (0.3, 0.3). Without momentum (decay 0: the sign of the gradient, as PGD) x_1
    turns back: delta (0.1, 0.1) -> (0, 0.2) -> (0.1, 0.3)."""
    x = np.full((1, 2), 0.5, np.float32)
    y = np.zeros((1,), np.int32)

    def model(inp):
        x1, x2 = inp[:, 0], inp[:, 1]
        score = tf.where(x1 <= 0.55, x1, 0.55 - 0.2 * (x1 - 0.55)) + x2
        return tf.stack([tf.zeros_like(score), score - 1000.0], axis=1)

    threat = ThreatModel("linf", 0.3, 0.1, 3)
    got = {decay: mim(model, x, y, threat, seed=0, decay=decay, loss_fn=linear_loss,
                      stop_when_fooled=False).numpy() - x for decay in (1.0, 0.0)}
    np.testing.assert_allclose(got[1.0], [[0.3, 0.3]], atol=1e-6)
    np.testing.assert_allclose(got[0.0], [[0.1, 0.3]], atol=1e-6)
