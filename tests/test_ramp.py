"""RAMP (Jiang and Singh, NeurIPS 2024) as an adversary: its KL term by hand, the pair
selection against the cross-entropy at each attack's point, the trainer's total loss,
and its options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.adversaries import RAMP, kl_on_correct, make_adversary
from msd_tf.evaluation.checks import lp_norms
from msd_tf.rng import as_seed
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, small_cnn

THREATS = (ThreatModel("linf", 0.3, 0.1, 5), ThreatModel("l2", 2.0, 0.5, 5),
           ThreatModel("l1", 10.0, 2.0, 5))


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _kl_by_hand(zp, zq, y, w):
    p, q = _softmax(zp.astype(np.float64)), _softmax(zq.astype(np.float64))
    kl = (p * np.log(p / q)).sum(1)
    m = (zp.argmax(1) == y) * w
    return (m * kl).sum() / m.sum() if m.sum() else 0.0


def test_kl_on_correct_by_hand_with_weights_and_none_correct():
    rng = np.random.default_rng(0)
    zp, zq = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    y = zp.argmax(1)
    y[[1, 4]] = (y[[1, 4]] + 1) % 4  # two examples x_q leaves misclassified: not counted
    w = np.array([1, 2, 0.5, 1, 3, 0], np.float32)
    for weights in (None, w):
        got = kl_on_correct(zp, zq, y, weights).numpy()
        want = _kl_by_hand(zp, zq, y, np.ones(6) if weights is None else w)
        assert got == pytest.approx(want, rel=1e-5)
    assert kl_on_correct(zp, zq, (zp.argmax(1) + 1) % 4).numpy() == 0.0
    assert kl_on_correct(zp, zp, zp.argmax(1)).numpy() == pytest.approx(0.0, abs=1e-6)


def test_kl_gradient_reaches_both_sides():
    zp = tf.Variable([[2.0, 0.0, -1.0]])
    zq = tf.Variable([[0.0, 1.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = kl_on_correct(zp, zq, tf.constant([0]))
    gp, gq = tape.gradient(loss, [zp, zq])
    assert np.abs(gp.numpy()).sum() > 1e-3 and np.abs(gq.numpy()).sum() > 1e-3


def test_pair_selection_takes_the_higher_loss_per_example():
    x, y = digits(32, seed=3)
    model = small_cnn(seed=1)
    # A small l_inf radius, so that neither attack wins everywhere on an untrained model.
    adv = make_adversary("ramp", (ThreatModel("linf", 0.06, 0.02, 5),) + THREATS[1:], lam=2.0)
    out = adv.perturb(model, tf.constant(x), tf.constant(y), seed=as_seed(7),
                      shared_seed=as_seed(7))
    x_q, x_r = out.extra["x_q"].numpy(), out.extra["x_r"].numpy()
    assert np.all(lp_norms(x_q, x, "linf") <= 0.06 + 1e-6)
    assert np.all(lp_norms(x_r, x, "l1") <= 10.0 * (1 + 1e-5))
    ce = lambda xa: tf.keras.losses.sparse_categorical_crossentropy(  # noqa: E731
        y, model(xa), from_logits=True).numpy()
    ce_q, ce_r, ce_0 = ce(x_q), ce(x_r), ce(x)
    assert np.all(ce_q >= ce_0 - 1e-5) and np.all(ce_r >= ce_0 - 1e-5)  # from delta = 0, best kept
    take_q = ce_q > ce_r
    assert 0 < take_q.sum() < len(x), "the case must exercise both sides"
    np.testing.assert_array_equal(out.x.numpy(), np.where(take_q[:, None, None, None], x_q, x_r))
    np.testing.assert_array_equal(out.counts.numpy(), [take_q.sum(), 0, (~take_q).sum()])


def test_trainer_optimizes_worse_ce_plus_lambda_kl():
    from msd_tf.training import AdversarialTrainer

    x, y = digits(16, seed=4)
    model = small_cnn(seed=2)
    adv = make_adversary("ramp", THREATS, lam=3.0)
    trainer = AdversarialTrainer(model, adv, seed=5)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    trainer.optimizer.build(model.trainable_variables)
    out = adv.perturb(model, tf.constant(x), tf.constant(y), seed=trainer.step_seed(),
                      shared_seed=trainer.step_seed(per_replica=False))
    z_best, zq, zr = (model(t).numpy().astype(np.float64)
                      for t in (out.x, out.extra["x_q"], out.extra["x_r"]))
    ce = -np.log(_softmax(z_best)[np.arange(16), y]).mean()
    kl = _kl_by_hand(zq, zr, y, np.ones(16))
    logs = trainer.train_step((tf.constant(x), tf.constant(y)))
    assert float(logs["ramp_kl"]) == pytest.approx(3.0 * kl, rel=1e-4)
    assert float(logs["loss"]) == pytest.approx(ce + 3.0 * kl, rel=1e-4)


def test_options_are_checked():
    with pytest.raises(ValueError, match="takes no option"):
        make_adversary("msd", THREATS, lam=1.0)
    with pytest.raises(ValueError, match="two different norms"):
        make_adversary("ramp", THREATS, pair=("l1", "l1"))
    with pytest.raises(ValueError, match="needs an l2 ThreatModel"):
        make_adversary("ramp", THREATS[:1] + THREATS[2:], pair=("linf", "l2"))
    ramp = make_adversary("ramp", THREATS, pair=("l2", "l1"), lam=1.5)
    assert isinstance(ramp, RAMP) and (ramp.source.norm, ramp.target.norm, ramp.lam) == \
        ("l2", "l1", 1.5)


def test_ramp_settings_are_part_of_a_ramp_experiment_only():
    from msd_tf.config import TrainConfig, experiment_of

    msd, ramp = TrainConfig(adversary="msd"), TrainConfig(adversary="ramp", ramp_lambda=1.5)
    assert "ramp_lambda" not in msd.experiment("sha")
    assert ramp.experiment("sha")["ramp_lambda"] == 1.5
    assert ramp.experiment("sha")["ramp_pair"] == ["linf", "l1"]
    # A config.json written before the RAMP fields existed is the same MSD experiment.
    saved = {k: v for k, v in msd.experiment("sha").items()}
    assert experiment_of(saved) == msd.experiment("sha")


def test_ramp_from_the_command_line(tmp_path, mnist_dir):
    import csv
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    def main(*args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        return subprocess.run([sys.executable, "-m", "msd_tf.main", "--flagfile=flags/smoke.cfg",
                               "--adversary=ramp", "--linf_steps=2", "--l1_steps=2", *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    out = tmp_path / "ramp"
    res = main(f"--output_dir={out}", "--ramp_lambda=1.5", "--ramp_pair=linf,l1")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert float(rows[-1]["ramp_kl"]) >= 0 and "chose_l1" in rows[-1]
    assert json.loads((out / "config.json").read_text())["ramp_lambda"] == 1.5
    res = main(f"--output_dir={out}", "--ramp_lambda=5")  # another experiment
    assert res.returncode == 2 and "different experiment" in res.stderr, res.stderr[-1500:]
    res = main(f"--output_dir={tmp_path / 'bad'}", "--ramp_pair=l1,l1")
    assert res.returncode == 2 and "error:" in res.stderr and "Traceback" not in res.stderr
