"""Square (l_inf, l_2, l_1) and Sparse-RS (l_1): closed-form optima on linear models, ball
and box, and success where gradient attacks fail (a model whose input gradient is
masked)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.attacks import apgd, base, pgd
from msd_tf.attacks.losses import margin
from msd_tf.attacks.sparse_rs import sparse_rs, sparse_rs_delta
from msd_tf.attacks.square import _eta, square, square_delta
from msd_tf.seeding import as_seed
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, norms_of, small_cnn
from tests.conftest import SHARED_MNIST


def _linear_images(shape=(4, 4, 1), batch=3, seed=0):
    """x = 0.5 (inside the box), logits [0, w.x - 1000]: never fooled, so the search runs
    every query, and the margin 1000 - w.(x + delta) falls exactly as w.delta rises."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape).astype(np.float32)
    w_t = tf.constant(w)

    def model(inp):
        score = tf.reduce_sum(inp * w_t, axis=[1, 2, 3])
        return tf.stack([tf.zeros_like(score), score - 1000.0], axis=1)

    x = np.full((batch, *shape), 0.5, np.float32)
    return model, x, np.zeros(batch, np.int32), w


def _graph(attack_delta, *args, **kwargs):
    """`attack_delta` traced once into a graph, as `compiled.run` runs it (eagerly, a
    thousand queries of small ops take a minute)."""
    def run():
        out = attack_delta(*args, **kwargs)
        return out.delta, out.loss

    delta, loss = tf.function(run)()
    return base.AttackOutput(delta=delta, loss=loss, counts=None)


def test_margin_by_hand():
    z = tf.constant([[2.0, 5.0, 1.0], [4.0, -1.0, 3.5]])
    np.testing.assert_allclose(margin(z, tf.constant([0, 0])).numpy(), [-3.0, 0.5])


def test_eta_pattern_is_squares_concentric_rectangles():
    # Square's s = 5 pattern: upper 2 x 5 rows around (1, 2): 1 + 1/4 + 1/9 at the
    # centre, 1/4 + 1/9 on the next ring, 1/9 outside; lower 3 x 5 rows negative.
    p = _eta(5)
    top = p[:2] / p[1, 2] * (1 + 1 / 4 + 1 / 9)
    np.testing.assert_allclose(top, [[1 / 9, 13 / 36, 13 / 36, 13 / 36, 1 / 9],
                                     [1 / 9, 13 / 36, 1 + 13 / 36, 13 / 36, 1 / 9]], rtol=1e-6)
    assert np.all(p[2:] < 0) and np.all(p[:2] > 0)
    assert np.sum(p ** 2) == pytest.approx(1.0)


def test_linf_square_reaches_the_vertex_optimum_of_a_linear_model():
    # max w.delta over the l_inf ball (inside the box) is eps * sign(w): random search
    # keeps every sign flip that helps and rejects every one that hurts.
    model, x, y, w = _linear_images()
    out = _graph(square_delta, model, tf.constant(x), tf.constant(y),
                 ThreatModel("linf", 0.2, 0.1, 1), as_seed(0), n_queries=400)
    np.testing.assert_allclose(out.delta.numpy(), np.broadcast_to(0.2 * np.sign(w), x.shape),
                               atol=1e-6)
    np.testing.assert_allclose(out.loss.numpy(), 1000 - (x[0] * w).sum()
                               - 0.2 * np.abs(w).sum(), rtol=1e-6)


def test_sparse_rs_finds_the_best_k_pixels_of_a_linear_model():
    # Over k = floor(eps / C) = 3 pixels set to box vertices, w.delta is largest at the 3
    # largest |w_i|, each moved from 0.5 to the vertex in the direction of w_i.
    model, x, y, w = _linear_images(seed=1)
    out = _graph(sparse_rs_delta, model, tf.constant(x), tf.constant(y),
                          ThreatModel("l1", 3.5, 0.1, 1), as_seed(0), n_queries=600)
    want = np.zeros(w.size, np.float32)
    top = np.argsort(-np.abs(w.ravel()))[:3]
    want[top] = 0.5 * np.sign(w.ravel()[top])
    np.testing.assert_allclose(out.delta.numpy().reshape(len(x), -1),
                               np.broadcast_to(want, (len(x), w.size)), atol=1e-6)


def test_sparse_rs_needs_a_budget_of_one_pixel():
    model, x, y, _ = _linear_images(shape=(4, 4, 3))
    with pytest.raises(ValueError, match="eps >= channels"):
        sparse_rs_delta(model, tf.constant(x), tf.constant(y), ThreatModel("l1", 2.0, 0.1, 1),
                        as_seed(0))


def test_l2_square_approaches_but_never_exceeds_the_linear_optimum():
    model, x, y, w = _linear_images(shape=(8, 8, 1), seed=2)
    out = _graph(square_delta, model, tf.constant(x), tf.constant(y),
                 ThreatModel("l2", 1.0, 0.1, 1), as_seed(0), n_queries=1000)
    gain = (out.delta.numpy() * w).reshape(len(x), -1).sum(1)
    optimum = 1.0 * np.linalg.norm(w)  # at eps * w / ||w||
    assert np.all(gain <= optimum * (1 + 1e-5)) and np.all(gain >= 0.6 * optimum)


def test_l1_square_approaches_but_never_exceeds_the_box_aware_optimum():
    # max w.delta over {||delta||_1 <= 2, 0 <= 0.5 + delta <= 1}: the 4 largest |w_i|
    # moved by 0.5 toward sign(w_i).
    model, x, y, w = _linear_images(shape=(8, 8, 1), seed=3)
    out = _graph(square_delta, model, tf.constant(x), tf.constant(y),
                 ThreatModel("l1", 2.0, 0.1, 1), as_seed(0), n_queries=1000)
    d = out.delta.numpy().reshape(len(x), -1)
    gain = d @ w.ravel()
    optimum = 0.5 * np.sort(np.abs(w.ravel()))[-4:].sum()
    print(f"l1 Square gain / optimum: {gain / optimum}")
    assert np.all(np.abs(d).sum(1) <= 2.0 * (1 + 1e-6)) and np.all(np.abs(d) <= 0.5 + 1e-6)
    assert np.all(gain <= optimum * (1 + 1e-5)) and np.all(gain >= 0.5 * optimum)


GRADIENT_FREE = [(square, "linf", 0.3), (square, "l2", 2.0), (square, "l1", 10.0),
                 (sparse_rs, "l1", 10.0)]


@pytest.mark.parametrize("attack, norm, eps", GRADIENT_FREE)
def test_inside_ball_and_box_and_deterministic(attack, norm, eps):
    model = small_cnn(seed=2)
    x, y = digits(8, seed=3)
    t = ThreatModel(norm, eps, 0.1, 1, restarts=2)
    a = attack(model, x, y, t, n_queries=60, seed=4).numpy()
    assert a.min() >= 0 and a.max() <= 1
    assert np.all(norms_of(a, x)[norm] <= eps * (1 + 1e-5))
    np.testing.assert_array_equal(attack(model, x, y, t, n_queries=60, seed=4).numpy(), a)
    assert np.abs(attack(model, x, y, t, n_queries=60, seed=5).numpy() - a).max() > 0


@pytest.fixture(scope="module")
def masked():
    """A small CNN trained on real digits, then wrapped so that its input gradient is
    exactly zero (the forward pass is unchanged): a gradient-masking "defence"."""
    from msd_tf import data

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    x, y = data.load_arrays("mnist", "test[:1100]", str(SHARED_MNIST))
    model = small_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[100:], y[100:], batch_size=100, epochs=2, verbose=0)

    def masked_fn(v):
        v = tf.convert_to_tensor(v)
        return model(tf.stop_gradient(v), training=False) + 0.0 * tf.reduce_sum(v)

    xe, ye = x[:100], y[:100]
    keep = model.predict(xe, verbose=0).argmax(1) == ye
    return masked_fn, xe[keep][:40], ye[keep][:40]


@pytest.mark.parametrize("attack, norm, eps, queries, most", [
    (square, "linf", 0.3, 300, 0.6), (square, "l2", 2.0, 600, 0.6),
    (square, "l1", 10.0, 600, 0.8),  # the weaker l_1 search (70% left measured)
    (sparse_rs, "l1", 10.0, 600, 0.6)])
def test_gradient_free_attacks_break_a_gradient_masked_model(masked, attack, norm, eps,
                                                             queries, most):
    # PGD and APGD see a zero gradient and never move; Square and Sparse-RS only query
    # the outputs.
    model, x, y = masked
    t = ThreatModel(norm, eps, {"linf": 0.01, "l2": 0.1, "l1": 0.8}[norm], 50)

    def acc(x_adv):
        return np.mean(np.asarray(model(x_adv)).argmax(1) == y)

    assert acc(x) == 1.0
    assert acc(pgd(model, x, y, t).numpy()) == 1.0  # zero gradient: PGD never moves
    assert acc(apgd(model, x, y, t.replace(random_start=False), loss="ce").numpy()) >= 0.9
    assert acc(attack(model, x, y, t, n_queries=queries).numpy()) <= most
