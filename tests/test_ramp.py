"""RAMP (Jiang and Singh, NeurIPS 2024) as an adversary: its KL term by hand, the pair
selection against the cross-entropy at each attack's point, the trainer's total loss,
and its options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf.adversaries import RAMP, kl_on_correct, make_adversary
from msd_tf.evaluation.checks import lp_norms
from msd_tf.seeding import as_seed
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

    options = dict(lam=1.5, pair=("linf", "l1"), projection=None)
    msd = TrainConfig(adversary="msd")
    ramp = TrainConfig(adversary="ramp", adversary_options=options)
    assert "adversary_options" not in msd.experiment("sha")
    assert ramp.experiment("sha")["adversary_options"] == dict(options, pair=["linf", "l1"])
    # A config.json written before RAMP's options existed is the same MSD experiment.
    saved = {k: v for k, v in msd.experiment("sha").items()}
    assert experiment_of(saved) == msd.experiment("sha")
    # Written while they were flat fields of every run: the same experiments again.
    flat = dict(ramp_lambda=1.5, ramp_pair=["linf", "l1"], ramp_projection=None)
    assert experiment_of({**msd.experiment("sha"), **flat}) == msd.experiment("sha")
    old_ramp = {k: v for k, v in ramp.experiment("sha").items() if k != "adversary_options"}
    assert experiment_of({**old_ramp, **flat}) == ramp.experiment("sha")
    assert experiment_of({**old_ramp, **flat, "ramp_lambda": 5.0}) != ramp.experiment("sha")


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
    assert json.loads((out / "config.json").read_text())["adversary_options"]["lam"] == 1.5
    res = main(f"--output_dir={out}", "--ramp_lambda=5")  # another experiment
    assert res.returncode == 2 and "different experiment" in res.stderr, res.stderr[-1500:]
    res = main(f"--output_dir={tmp_path / 'bad'}", "--ramp_pair=l1,l1")
    assert res.returncode == 2 and "error:" in res.stderr and "Traceback" not in res.stderr
    # Another adversary's option is refused, in one line naming it, before any output.
    res = main(f"--output_dir={tmp_path / 'stray'}", "--adversary=msd", "--ramp_lambda=2")
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "--ramp_lambda" in errors[0], \
        res.stderr[-1500:]
    assert "Traceback" not in res.stderr and not (tmp_path / "stray").exists()


def test_fuse_matches_numpy_for_each_case():
    from msd_tf.adversaries.ramp import fuse

    rng = np.random.default_rng(6)
    old = rng.normal(size=(3, 4))
    g_a = rng.normal(size=(3, 4))
    for g_n, positive in ((g_a + 0.3 * rng.normal(size=(3, 4)), True), (-g_a, False)):
        cos = (g_a * g_n).sum() / np.linalg.norm(g_a) / np.linalg.norm(g_n)
        want = old + 0.5 * g_a + 0.5 * max(cos, 0.0) * g_n
        got = fuse(old, old + g_a, old + g_n, 0.5).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10)
        assert (cos > 0) == positive
    assert float(fuse(np.float64(1), np.float64(5), np.float64(9), 0.5)) == 5.0
    np.testing.assert_allclose(fuse(old, old + g_a, old, 0.5).numpy(),
                               old + 0.5 * g_a)  # no natural move: half the adversarial one


def test_projection_epoch_by_hand():
    """One epoch of two steps: the natural copy takes plain SGD steps on the clean
    batches from theta_old (checked by hand), and the epoch ends at fuse(theta_old,
    theta_adv, theta_nat) for every tensor."""
    from msd_tf.adversaries.ramp import fuse
    from msd_tf.training import AdversarialTrainer

    x, y = digits(8, seed=5)
    model = small_cnn(seed=3)
    adv = make_adversary("ramp", THREATS, lam=1.0, projection=0.5)
    trainer = AdversarialTrainer(model, adv, seed=1)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    theta_old = [w.numpy() for w in model.weights]
    nat = small_cnn(seed=3)  # the same initial weights, trained by hand on clean data
    nat.set_weights(theta_old)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # runs after the projection
            seen["fused"] = [w.numpy() for w in model.weights]

    class Before(keras.callbacks.Callback):  # the weights just before the projection
        def on_train_batch_end(self, batch, logs=None):
            seen["adv"] = [w.numpy() for w in model.weights]
            seen["nat"] = [w.numpy() for w in adv.natural.weights]

    trainer.fit(ds, epochs=1, verbose=0, callbacks=[Before(), Spy()])
    for xb, yb in ds:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                yb, nat(xb, training=True), from_logits=True))
        for w, g in zip(nat.trainable_weights, tape.gradient(loss, nat.trainable_weights)):
            w.assign_sub(0.1 * g)
    for mine, hand in zip(seen["nat"], nat.weights):
        np.testing.assert_allclose(mine, hand.numpy(), rtol=1e-5, atol=1e-6)
    for o, a, n, f in zip(theta_old, seen["adv"], seen["nat"], seen["fused"]):
        np.testing.assert_allclose(f, fuse(o, a, n, 0.5).numpy(), rtol=1e-5,
                                   atol=1e-7)
    assert any(np.abs(f - a).max() > 1e-4 for a, f in zip(seen["adv"], seen["fused"]))
    np.testing.assert_array_equal(adv.natural.weights[0].numpy(), seen["fused"][0])


def test_projection_state_is_checkpointed_and_resumes_bit_exact(tmp_path, mnist_dir):
    """3 epochs straight, or 2 then resumed to 3: the same weights, bit for bit (the
    natural copy's optimizer state crosses epochs; the checkpoint must carry it)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    def main(out, epochs):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        res = subprocess.run([sys.executable, "-m", "msd_tf.main", "--flagfile=flags/smoke.cfg",
                              "--adversary=ramp", "--linf_steps=2", "--l1_steps=2",
                              "--ramp_projection=0.5", f"--epochs={epochs}",
                              "--lr_epochs=0,1,3", f"--output_dir={out}"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        return res

    def values(out):
        reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(out / "checkpoints")))
        names = [k for k in reader.get_variable_to_shape_map() if "save_counter" not in k]
        return {k: reader.get_tensor(k) for k in names
                if not isinstance(reader.get_tensor(k), bytes)}

    main(tmp_path / "straight", 3)
    main(tmp_path / "resumed", 2)
    assert "from epoch 2" in main(tmp_path / "resumed", 3).stderr
    a, b = values(tmp_path / "straight"), values(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert any("natural_optimizer" in k for k in a), sorted(a)[:20]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
