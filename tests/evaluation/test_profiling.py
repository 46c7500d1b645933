"""The forward / backward counts of an evaluation's profile, against counts by hand."""

import numpy as np
import tensorflow as tf

from msd_tf import threats
from msd_tf.attacks import pgd
from msd_tf.evaluation import profiling, suite
from tests.attacks.helpers import fixture_cnn


def _model_and_batch(n=6):
    model = fixture_cnn(seed=1)
    x = np.random.default_rng(0).uniform(size=(n, 28, 28, 1)).astype(np.float32)
    return model, x, np.arange(n) % 10


def test_eager_forward_and_gradient_counts():
    model, x, _ = _model_and_batch()
    counted = profiling.CountingLogits(model)
    counted(x[:4])
    with tf.GradientTape() as tape:
        v = tf.constant(x)
        tape.watch(v)
        logits = counted(v)
        loss = tf.reduce_sum(logits[:, 0])
    tape.gradient(loss, v)
    with tf.GradientTape(persistent=True) as tape:  # DeepFool-like: one gradient per class
        tape.watch(v)
        logits = counted(v)
        parts = [tf.reduce_sum(logits[:, k]) for k in range(3)]
    for part in parts:
        tape.gradient(part, v)
    assert counted.counts() == (4 + 6 + 6, 6 + 3 * 6)
    # The wrapped model's logits are unchanged, and so are their gradients.
    np.testing.assert_array_equal(counted(x).numpy(), model(x, training=False).numpy())


def test_counts_inside_a_compiled_attack_loop():
    # PGD with stop_when_fooled on a batch no step can fool (eps tiny): every one of the
    # `steps` iterations takes one forward and one backward pass of the whole batch,
    # then one forward pass keeps the best run (base.best_of_runs).
    model, x, y = _model_and_batch()
    y = np.argmax(model(x, training=False).numpy(), axis=1)  # correctly classified
    counted = profiling.CountingLogits(model)
    threat = threats.ThreatModel(norm="linf", eps=1e-6, alpha=1e-7, steps=7)
    pgd(counted, x, y, threat, seed=0)
    assert counted.counts() == (7 * 6 + 6, 7 * 6)


def test_run_suite_records_the_profile(tmp_path):
    from msd_tf.evaluation import runner

    model, x, _ = _model_and_batch(8)
    y = np.argmax(model(x, training=False).numpy(), axis=1)
    fn = lambda v: model(v, training=False)  # noqa: E731
    spec = suite.AttackSpec("pgd_tiny", "pgd", "linf", 1e-6, 1, steps=5, alpha=1e-7)
    from msd_tf.evaluation.records import EvalConfig

    config = EvalConfig("mnist", [spec], output_dir=str(tmp_path), batch_size=5,
                        verbose=False)
    _, records, _ = runner.run_suite("m", "f" * 64, fn, x, y, config)
    p = records["pgd_tiny"].profile
    # 5 iterations, the best-run pass, and the suite's check of what the attack claims.
    assert (p["attacked"], p["forward"], p["backward"]) == (8, 5 * 8 + 8 + 8, 5 * 8)
    assert p["seconds"] > 0 and not p["cached"]
    # A second run reads the cache: same figures, marked cached.
    _, again, _ = runner.run_suite("m", "f" * 64, fn, x, y, config)
    assert again["pgd_tiny"].profile == dict(p, cached=True)
