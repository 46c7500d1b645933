import keras
import numpy as np
import pytest
import tensorflow as tf

from msd_tf import adversaries
from msd_tf.adversaries import ADVERSARIES, eat_choice, make_adversary
from msd_tf.attacks import pgd_delta
from msd_tf.seeding import fold
from msd_tf.threats import NORMS, L1Step, ThreatModel
from tests.attacks.helpers import digits, small_cnn

THREATS = (ThreatModel("linf", 0.3, 0.05, 3), ThreatModel("l2", 2.0, 0.4, 3),
           ThreatModel("l1", 10.0, 2.0, 3, l1=L1Step(k_range=(10, 10))))


def test_registry_names_and_errors():
    assert list(ADVERSARIES) == ["none", "linf", "l2", "l1", "msd", "max", "avg", "eat", "ramp"]
    # The package's lazy names are the registry's (its own list is a second copy).
    from msd_tf.adversaries import registry

    assert set(adversaries.__all__) == {"Option", "catalog", *registry.__all__}
    with pytest.raises(ValueError, match=r"Unknown adversary 'pgd'; known: \['none'"):
        make_adversary("pgd", THREATS)
    with pytest.raises(ValueError, match="needs an l2 ThreatModel"):
        make_adversary("l2", THREATS[:1])
    with pytest.raises(ValueError, match="needs `threats`"):
        make_adversary("msd", ())
    assert isinstance(make_adversary("none"), adversaries.Standard)


def test_single_norm_adversary_is_pgd_of_its_norm():
    model = small_cnn(seed=0)
    x, y = digits(8, seed=1)
    seed = tf.constant([3, 4], tf.int64)
    out = make_adversary("l2", THREATS).perturb(model, tf.constant(x), tf.constant(y),
                                               seed=seed, shared_seed=seed)
    want = pgd_delta(model, tf.constant(x), tf.constant(y), THREATS[1], seed).delta
    np.testing.assert_allclose(out.x.numpy(), np.clip(x + want.numpy(), 0, 1), atol=1e-6)
    avg = make_adversary("avg", THREATS).perturb(model, tf.constant(x), tf.constant(y),
                                                seed=seed, shared_seed=seed)
    assert avg.repeats == 3 and avg.x.shape[0] == 24
    np.testing.assert_array_equal(avg.counts.numpy(), [8, 8, 8])
    # AVG's batch is the three PGD runs, one per norm (each on its own seed stream),
    # stacked in the order l_inf, l_2, l_1, with the labels repeated.
    from msd_tf.seeding import fold

    for i, threat in enumerate(THREATS):
        run = pgd_delta(model, tf.constant(x), tf.constant(y), threat, fold(seed, i)).delta
        np.testing.assert_allclose(avg.x.numpy()[8 * i:8 * (i + 1)],
                                   np.clip(x + run.numpy(), 0, 1), atol=1e-6)
    np.testing.assert_array_equal(avg.y.numpy(), np.tile(y, 3))


def test_train_attack_apgd_replaces_pgd_where_it_applies():
    from msd_tf.attacks.apgd import apgd_delta

    model = small_cnn(seed=0)
    x, y = digits(8, seed=1)
    xt, yt = tf.constant(x), tf.constant(y)
    seed = tf.constant([3, 4], tf.int64)

    def apgd(threat, s):  # E-AT's and RAMP's apgd_train: from 0, the highest-loss point
        return apgd_delta(model, xt, yt, threat, s, loss="ce", l1_eps_factors=(1.0,),
                          start=tf.zeros_like(xt), highest_loss=True)

    out = make_adversary("l1", THREATS, train_attack="apgd").perturb(
        model, xt, yt, seed=seed, shared_seed=seed)
    want = apgd(THREATS[2], seed).delta.numpy()
    np.testing.assert_allclose(out.x.numpy(), np.clip(x + want, 0, 1), atol=1e-6)
    pgd = pgd_delta(model, xt, yt, THREATS[2], seed).delta.numpy()
    assert np.abs(want - pgd).max() > 1e-3  # not PGD: the test can fail
    # MAX: per example the APGD run of highest loss (ties: the earlier norm).
    runs = [apgd(t, fold(seed, i)) for i, t in enumerate(THREATS)]
    losses = np.stack([r.loss.numpy() for r in runs])
    pick = losses.argmax(0)
    want = np.stack([runs[pick[b]].delta.numpy()[b] for b in range(len(x))])
    out = make_adversary("max", THREATS, train_attack="apgd").perturb(
        model, xt, yt, seed=seed, shared_seed=seed)
    np.testing.assert_allclose(out.x.numpy(), np.clip(x + want, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(out.counts.numpy(), np.bincount(pick, minlength=3))
    # A random start, where the threat asks for one, is drawn (not delta = 0).
    rs = make_adversary("linf", [t.replace(random_start=True) for t in THREATS],
                        train_attack="apgd").perturb(model, xt, yt, seed=seed,
                                                     shared_seed=seed)
    assert np.abs(rs.x.numpy() - np.clip(x + runs[0].delta.numpy(), 0, 1)).max() > 1e-3
    for name in ("msd", "none"):
        with pytest.raises(ValueError, match="applies to linf, l2, l1, max, avg and eat"):
            make_adversary(name, THREATS, train_attack="apgd")
    with pytest.raises(ValueError, match="Unknown training attack 'fgsm'"):
        make_adversary("eat", THREATS, train_attack="fgsm")


def test_eat_samples_norms_by_running_error_and_updates_it(tmp_path):
    from msd_tf.models import mnist_cnn
    from msd_tf.training import AdversarialTrainer

    # Sampling frequencies follow the running error (0.1 : 0.3 : 0.6).
    err = tf.constant([0.1, 0.3, 0.6])
    draws = [int(eat_choice(err, fold(tf.constant([0, 0], tf.int64), i)))
             for i in range(3000)]
    freq = np.bincount(draws, minlength=3) / 3000
    np.testing.assert_allclose(freq, [0.1, 0.3, 0.6], atol=0.03)

    x, y = digits(20, seed=4)
    keras.utils.set_random_seed(0)
    eat = make_adversary("eat", THREATS)
    trainer = AdversarialTrainer(mnist_cnn(), eat)
    trainer.compile(optimizer=keras.optimizers.SGD(0.05),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # The adversary owns its state: a weight the trainer tracks (and checkpoints save).
    assert any(w is eat.norm_error for w in trainer.non_trainable_weights)
    eat.norm_error.assign([0.5, 0.5, 0.5])
    logs = trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(10), epochs=1,
                       verbose=0).history
    err = eat.norm_error.numpy()
    # Two steps: each moved the chosen norm's EMA (momentum 0.9) from 0.5 toward that
    # step's adversarial error e in [0, 1]; the other norms stayed at 0.5. The logged
    # choice fractions say which norms were used.
    chosen = np.array([logs[f"chose_{n}"][0] for n in NORMS])
    assert chosen.sum() == pytest.approx(1.0)
    moved = np.abs(err - 0.5) > 1e-7
    assert moved.any() and np.all(moved <= (chosen > 0))
    assert np.all((err >= 0.405 - 1e-6) & (err <= 0.595 + 1e-6))  # <= 2 EMA steps
    # Saved and restored with a checkpoint.
    ckpt = tf.train.Checkpoint(adversary=eat)
    path = ckpt.write(str(tmp_path / "ckpt"))
    eat.norm_error.assign([1.0, 1.0, 1.0])
    ckpt.read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(eat.norm_error.numpy(), err)
