import numpy as np
import tensorflow as tf

from msd_tf import threats
from msd_tf.attacks import base, msd, msd_delta
from msd_tf.attacks.losses import cross_entropy
from msd_tf.balls import projected_step
from msd_tf.balls.l1 import draw_k
from msd_tf.seeding import as_seed, fold
from msd_tf.threats import L1Step, ThreatModel
from tests.attacks.helpers import digits, norms_of, small_cnn

THREATS = (ThreatModel("linf", 0.3, 0.05, 1), ThreatModel("l2", 2.0, 0.4, 1),
           ThreatModel("l1", 10.0, 2.0, 1))


def _reference_msd(model, x, y, threat_list, steps, seed, start=None):
    """Algorithm 1 written the slow way: candidates scored one norm and one example at
    a time (separate forward passes), selection by a Python loop, best kept."""
    delta = np.zeros_like(x) if start is None else start
    best, best_loss = delta.copy(), np.full(len(x), -np.inf)
    for t in range(steps):
        d = tf.constant(delta)
        loss, _, grad = base.loss_and_grad(model, tf.constant(x), d, tf.constant(y),
                                           training=False, loss_fn=cross_entropy)
        loss = loss.numpy()
        it_seed = fold(as_seed(seed), t)
        cands = [projected_step(tf.constant(x), d, grad, th, it_seed).numpy()
                 for th in threat_list]
        new = np.empty_like(delta)
        for b in range(len(x)):
            if loss[b] > best_loss[b]:
                best[b], best_loss[b] = delta[b], loss[b]
            scores = [float(cross_entropy(model(x[b:b + 1] + c[b:b + 1]), y[b:b + 1])[0])
                      for c in cands]
            i = int(np.argmax(scores))  # first maximum: ties go to the earlier norm
            new[b] = cands[i][b]
            if scores[i] > best_loss[b]:
                best[b], best_loss[b] = new[b], scores[i]
        delta = new
    return best, best_loss


def test_msd_matches_example_by_example_reference():
    model = small_cnn(seed=0)
    x, y = digits(10, seed=1)
    out = msd_delta(model, tf.constant(x), tf.constant(y), THREATS, as_seed(4), steps=6)
    want_delta, want_loss = _reference_msd(model, x, y, THREATS, 6, 4)
    np.testing.assert_allclose(out.delta.numpy(), want_delta, atol=1e-5)
    np.testing.assert_allclose(out.loss.numpy(), want_loss, rtol=1e-4, atol=1e-5)
    assert out.counts.numpy().sum() == 6 * 10


def test_msd_loss_at_least_zero_perturbation_and_in_some_ball():
    model = small_cnn(seed=2)
    x, y = digits(24, seed=3)
    mnist_threats, _ = threats.MSD_TRAIN["mnist"]
    x_adv = msd(model, x, y, mnist_threats, steps=15, seed=1).numpy()
    clean = cross_entropy(model(x), y).numpy()
    adv = cross_entropy(model(x_adv), y).numpy()
    assert np.all(adv >= clean - 1e-5)
    assert np.mean(adv > clean + 1e-3) > 0.9
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    n = norms_of(x_adv, x)
    in_some = ((n["linf"] <= 0.3 + 1e-5) | (n["l2"] <= 2.0 * (1 + 1e-5))
               | (n["l1"] <= 10.0 * (1 + 1e-5)))
    assert np.all(in_some)


def test_msd_with_one_ball_returns_the_best_iterate_of_pgd_without_freezing():
    # With one ball, MSD's iterates are PGD's (no freezing, start at 0), and MSD returns
    # the highest-loss one among delta_0 .. delta_T (the earliest on ties). l_2 steps
    # draw nothing at random, so the two trajectories are the same computation.
    from msd_tf.attacks import pgd_delta

    model = small_cnn(seed=5)
    x, y = digits(8, seed=6)
    xt, yt = tf.constant(x), tf.constant(y)
    # A step as long as the radius overshoots, so the loss is not monotone along the path.
    t = ThreatModel("l2", 2.0, 2.0, 5)
    m = msd_delta(model, xt, yt, (t,), as_seed(0))
    deltas = [np.zeros_like(x)]
    losses = [cross_entropy(model(x), y).numpy()]
    for k in range(1, t.steps + 1):
        p = pgd_delta(model, xt, yt, t.replace(steps=k), as_seed(0), stop_when_fooled=False)
        deltas.append(p.delta.numpy())
        losses.append(p.loss.numpy())
    best = np.argmax(np.stack(losses), axis=0)  # first maximum
    assert len(set(best.tolist())) > 1, "the best iterate differs between examples"
    want = np.stack([deltas[k][b] for b, k in enumerate(best)])
    np.testing.assert_allclose(m.delta.numpy(), want, atol=1e-6)
    np.testing.assert_allclose(m.loss.numpy(), np.max(np.stack(losses), axis=0), rtol=1e-5)


def test_msd_seed_changes_random_k_only_through_the_seed():
    model = small_cnn(seed=7)
    x, y = digits(8, seed=8)
    th = (ThreatModel("l1", 10.0, 2.0, 1, l1=L1Step(k_range=(5, 20))),)
    a = msd(model, x, y, th, steps=5, seed=1).numpy()
    b = msd(model, x, y, th, steps=5, seed=1).numpy()
    c = msd(model, x, y, th, steps=5, seed=2).numpy()
    # Same seed: equal up to float reordering of concurrent ops (bit-exact: --deterministic).
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(a - c).max() > 1e-3
    ks = {int(draw_k(th[0], fold(as_seed(s), 0))) for s in range(40)}
    assert ks <= set(range(5, 21)) and len(ks) > 8


def test_msd_random_start_is_a_point_of_one_asking_ball_then_the_same_algorithm():
    from msd_tf.attacks.msd import _random_start

    model = small_cnn(seed=0)
    x, y = digits(40, seed=1)
    # l_inf and l_1 ask for a random start, l_2 not: each example starts in one of those two.
    asking = (THREATS[0].replace(random_start=True), THREATS[1],
              THREATS[2].replace(random_start=True))
    start = _random_start(tf.constant(x), asking, as_seed(4)).numpy()
    assert np.all(x + start >= -1e-6) and np.all(x + start <= 1 + 1e-6)  # in the box
    n = norms_of(x + start, x)
    in_linf, in_l1 = n["linf"] <= 0.3 + 1e-5, n["l1"] <= 10.0 + 1e-3
    assert np.all(in_linf | in_l1)
    # Both balls drawn: an l_inf start has an l_1 norm far above 10 (~0.075 x 784 after
    # the box), an l_1 start at most 10. No example at zero.
    assert in_l1.sum() >= 5 and (~in_l1).sum() >= 5
    assert np.all(n["l1"] > 0)
    assert not np.array_equal(start, _random_start(tf.constant(x), asking, as_seed(5)).numpy())
    # Without an asking ball the start is zero (the paper's MSD, unchanged).
    assert not _random_start(tf.constant(x), THREATS, as_seed(4)).numpy().any()
    # From that start, the attack is Algorithm 1 (the slow reference started there).
    out = msd_delta(model, tf.constant(x[:8]), tf.constant(y[:8]), asking, as_seed(4), steps=3)
    want_delta, want_loss = _reference_msd(model, x[:8], y[:8], asking, 3, 4,
                                           start=_random_start(tf.constant(x[:8]), asking,
                                                               as_seed(4)).numpy())
    np.testing.assert_allclose(out.delta.numpy(), want_delta, atol=1e-5)
    np.testing.assert_allclose(out.loss.numpy(), want_loss, rtol=1e-4, atol=1e-5)
