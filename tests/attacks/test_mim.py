import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks import mim, mim_delta
from msd_tf.attacks.randomness import as_seed
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
