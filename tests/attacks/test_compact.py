"""Skipping fooled examples (`compact`) changes the work, not the result: PGD, MIM and APGD
(CE and targeted, all three norms) against the same attacks computing every example,
on a trained model and real digits (the AutoAttack fixture of test_apgd_l1.py)."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from msd_tf import threats
from msd_tf.attacks import mim_delta, pgd_delta
from msd_tf.attacks.apgd import apgd_attack_delta, apgd_delta
from msd_tf.evaluation import profiling
from msd_tf.seeding import fold
from tests.attacks.helpers import load_autoattack_fixture

N = 40


@pytest.fixture(scope="module")
def trained():
    model, x, data = load_autoattack_fixture()
    return model, tf.constant(x[:N]), tf.constant(data["y"][:N].astype(np.int32))


def _run(model, delta_fn, x, y, compact):
    counted = profiling.CountingLogits(model)
    fn = tf.function(lambda xx, yy: delta_fn(counted, xx, yy, compact=compact).delta)
    delta = fn(x, y).numpy()
    fooled = np.argmax(model(x + delta, training=False).numpy(), 1) != y.numpy()
    return delta, fooled, counted.counts()


SEED = tf.constant([3, 4], tf.int64)
# (name, norm, eps, graph-level attack(model, x, y, compact=...)); radii at which some
# digits are fooled early, some late and some never.
CASES = [
    ("pgd", "linf", 0.2, lambda t: functools.partial(pgd_delta, threat=t, seed=SEED)),
    ("pgd", "l2", 1.5, lambda t: functools.partial(pgd_delta, threat=t, seed=SEED)),
    ("pgd", "l1", 8.0, lambda t: functools.partial(pgd_delta, threat=t, seed=SEED)),
    ("mim", "linf", 0.2, lambda t: functools.partial(mim_delta, threat=t, seed=SEED,
                                                      stop_when_fooled=True)),
    ("apgd_ce", "linf", 0.2, lambda t: functools.partial(
        apgd_attack_delta, threat=t, seed=SEED, loss="ce")),
    ("apgd_t", "l2", 1.5, lambda t: functools.partial(
        apgd_attack_delta, threat=t, seed=SEED, loss="dlr_targeted", n_targets=2)),
    ("apgd_ce", "l1", 8.0, lambda t: functools.partial(
        apgd_attack_delta, threat=t, seed=SEED, loss="ce")),
]


@pytest.mark.parametrize("name,norm,eps,make", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_compact_gives_the_same_deltas_with_fewer_passes(trained, name, norm, eps, make):
    model, x, y = trained
    threat = threats.ThreatModel(norm=norm, eps=eps, alpha=eps / 8, steps=20, restarts=1,
                                 random_start=name.startswith("apgd"))
    attack = make(threat)
    call = lambda m, xx, yy, compact: attack(m, xx, yy, compact=compact)  # noqa: E731
    full, fooled_full, (fwd_full, bwd_full) = _run(model, call, x, y, compact=False)
    fast, fooled_fast, (fwd_fast, bwd_fast) = _run(model, call, x, y, compact=True)
    clean = np.argmax(model(x, training=False).numpy(), 1) == y.numpy()
    assert 0 < fooled_full[clean].sum() < clean.sum()  # the case is not trivial
    np.testing.assert_array_equal(fooled_fast, fooled_full)
    # Per-example float results do not depend on the batch they were computed in, up to
    # rounding: every delta matches; where the model is fooled, both fool it but may
    # differ: l_1-APGD computing every example keeps the last adversarial point of its
    # last phase, compact its first; APGD-T's targets stop once one of them fooled.
    same = ~fooled_full if norm == "l1" or name == "apgd_t" else np.ones(N, bool)
    np.testing.assert_allclose(fast[same], full[same], atol=2e-5)
    assert bwd_fast < bwd_full and fwd_fast < fwd_full


@pytest.mark.parametrize("loss,norm,eps", [("dlr_targeted", "linf", 0.2), ("ce", "l1", 8.0)])
def test_stacked_runs_break_what_runs_one_after_the_other_break(trained, loss, norm, eps):
    # APGD-T over 3 targets (APGD-CE with 3 restarts) in one stacked batch against the
    # same runs one at a time on the examples still unbroken, with the same seeds.
    model, x, y = trained
    runs = 3
    threat = threats.ThreatModel(norm=norm, eps=eps, alpha=eps / 8, steps=20, restarts=1)
    seed = tf.constant([5, 6], tf.int64)
    stacked = tf.function(lambda xx, yy: apgd_attack_delta(
        model, xx, yy, threat.replace(restarts=1 if loss != "ce" else runs), seed, loss=loss,
        n_targets=runs, compact=True).delta)(x, y).numpy()
    fooled = np.argmax(model(x + stacked, training=False).numpy(), 1) != y.numpy()
    # One run at a time, each on the whole batch (the starts are drawn per batch), with
    # the stacked batch's seeds: an example is broken if any run fools it.
    one = np.argmax(model(x, training=False).numpy(), 1) != y.numpy()
    for r in range(runs):
        if loss == "ce":
            out = apgd_delta(model, x, y, threat, fold(seed, r), loss="ce").delta
        else:
            out = apgd_attack_delta(model, x, y, threat, seed, loss=loss, n_targets=1,
                                    target_offset=r).delta
        one |= np.argmax(model(x + out, training=False).numpy(), 1) != y.numpy()
    clean = np.argmax(model(x, training=False).numpy(), 1) == y.numpy()
    assert 0 < (fooled & clean).sum() < clean.sum()
    np.testing.assert_array_equal(fooled, one)
