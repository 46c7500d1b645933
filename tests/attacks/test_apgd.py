import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks import apgd, pgd
from msd_tf.attacks.apgd import _checkpoints, apgd_delta
from msd_tf.attacks.losses import dlr
from msd_tf.seeding import as_seed
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, linear_loss, linear_problem, norms_of, small_cnn
from tests.conftest import SHARED_MNIST


def _run(threat, loss=linear_loss):
    model, x, y, w = linear_problem()
    out = apgd_delta(model, tf.constant(x), tf.constant(y), threat, as_seed(0), loss=loss)
    return out.delta.numpy(), w


def test_linf_and_l2_reach_the_closed_form_optimum():
    d, w = _run(ThreatModel("linf", 0.3, 0.1, 30))
    np.testing.assert_allclose(d, np.broadcast_to(0.3 * np.sign(w), d.shape), atol=1e-5)
    d, w = _run(ThreatModel("l2", 2.0, 0.1, 50))
    # The momentum iterate converges to the optimum up to ~1e-3 per coordinate in 50
    # iterations; the objective is within 1e-4 relative of eps * ||w||_2.
    assert np.all(d @ w >= (1 - 1e-4) * 2.0 * np.linalg.norm(w))
    np.testing.assert_allclose(d, np.broadcast_to(2.0 * w / np.linalg.norm(w), d.shape),
                               atol=5e-3)


def test_l1_apgd_reaches_the_box_aware_optimum():
    # max w.d over {||d||_1 <= 10, 0 <= 0.5 + d <= 1}: the 20 largest |w_i| moved by 0.5.
    d, w = _run(ThreatModel("l1", 10.0, 0.1, 100))
    top = np.argsort(-np.abs(w))[:20]
    optimum = 0.5 * np.abs(w[top]).sum()
    assert np.all(d @ w >= 0.99 * optimum) and np.all(d @ w <= optimum + 1e-3)
    assert np.all(np.abs(d).sum(1) <= 10 * (1 + 1e-5))


def test_checkpoint_schedule_matches_the_paper():
    # p_0 = 0, p_1 = 0.22, windows shrink by 0.03 down to 0.06 (of 100 iterations).
    assert np.flatnonzero(_checkpoints(100)).tolist() == [21, 40, 56, 69, 79, 86, 92, 98]


def test_dlr_by_hand():
    z = tf.constant([[5.0, 3.0, 1.0, 0.0], [1.0, 4.0, 2.0, 0.5]])
    y = tf.constant([0, 0])
    # Untargeted: -(z_y - max_other) / (z1 - z3).
    np.testing.assert_allclose(dlr(z, y).numpy(), [-(5 - 3) / (5 - 1), -(1 - 4) / (4 - 1)],
                               rtol=1e-6)
    # Targeted at class 2: -(z_y - z_t) / (z1 - (z3 + z4) / 2).
    np.testing.assert_allclose(dlr(z, y, tf.constant([2, 2])).numpy(),
                               [-(5 - 1) / (5 - 0.5), -(1 - 2) / (4 - 0.75)], rtol=1e-6)


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 1.0), ("l1", 5.0)])
def test_results_in_ball_and_box_and_deterministic(norm, eps):
    model = small_cnn(seed=2)
    x, y = digits(8, seed=3)
    t = ThreatModel(norm, eps, 0.1, 10, restarts=2)
    for loss in ("ce", "dlr_targeted"):
        a = apgd(model, x, y, t, loss=loss, seed=1, n_targets=3).numpy()
        assert a.min() >= 0 and a.max() <= 1
        assert np.all(norms_of(a, x)[norm] <= eps * (1 + 1e-5))
        # Same seed: equal up to float reordering of concurrent ops (bit-exact: --deterministic).
        np.testing.assert_allclose(apgd(model, x, y, t, loss=loss, seed=1,
                                        n_targets=3).numpy(), a, atol=1e-5)


def test_apgd_t_is_at_least_as_strong_as_pgd_on_a_trained_mnist_model():
    from msd_tf import data

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    x, y = data.load_arrays("mnist", "test[:2000]", str(SHARED_MNIST))
    model = small_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[200:], y[200:], batch_size=100, epochs=2, verbose=0)
    xe, ye = x[:100], y[:100]
    for threat in (ThreatModel("linf", 0.1, 0.01, 30), ThreatModel("l2", 1.0, 0.1, 30)):
        acc_pgd = np.mean(model.predict(pgd(model, xe, ye, threat, seed=0), verbose=0)
                          .argmax(1) == ye)
        acc_apgd = np.mean(model.predict(apgd(model, xe, ye, threat, loss="dlr_targeted",
                                              seed=0), verbose=0).argmax(1) == ye)
        print(f"{threat.norm} eps={threat.eps}: PGD {acc_pgd:.2f}, APGD-T {acc_apgd:.2f}")
        assert acc_apgd <= acc_pgd
