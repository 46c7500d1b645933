"""Every attack of the paper's suite runs on a small Keras model and real MNIST digits
(generated digits when ../shared/data is absent) and stays inside its radius."""

import keras
import numpy as np
import pytest

from msd_tf.evaluation import adapters, checks, suite
from msd_tf.evaluation.records import EvalConfig
from tests.conftest import SHARED_MNIST

SPECS = suite.paper_suite("mnist", restarts=2, budget="fast")
STRONG = suite.strong_additions("mnist", restarts=2, budget="fast")


@pytest.fixture(scope="module")
def trained():
    from msd_tf import data
    from tests.attacks.helpers import digits, small_cnn

    if (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        x, y = data.load_arrays("mnist", "test[:1200]", str(SHARED_MNIST))
    else:
        x, y = digits(1200)
    model = small_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[200:], y[200:], batch_size=100, epochs=2, verbose=0)
    return model, x[:200], y[:200]


def test_suite_covers_section_7():
    names = {s.name for s in SPECS}
    assert names == {"pgd_linf", "fgsm", "fb_pgd_linf", "mim", "pgd_l2", "fb_pgd_l2",
                     "gaussian_noise", "boundary", "deepfool", "pointwise_l2", "ddn", "cw_l2",
                     "pgd_l1", "salt_pepper", "pointwise_l1"}
    assert {s.norm for s in SPECS if s.name in ("salt_pepper", "pointwise_l1")} == {"l1"}
    assert [s.restarts for s in suite.paper_suite("mnist") if s.name in ("ddn", "deepfool")] \
        == [1, 1]
    assert {s.eps for s in suite.paper_suite("cifar10") if s.norm == "l1"} == {12.0}


def test_autoattack_suite_is_the_standard_version_per_norm():
    # fra31/auto-attack, set_version("standard"): APGD-CE 1 restart (L1: 5), APGD-T 9
    # target classes (L1: 5), 100 iterations, FAB-T 9 target classes, Square 5000 queries.
    specs = suite.autoattack_suite("mnist")
    assert [(s.name, s.restarts) for s in specs] == [
        ("apgd_ce_linf", 1), ("apgd_t_linf", 9), ("fab_t_linf", 9), ("square_linf", 1),
        ("apgd_ce_l2", 1), ("apgd_t_l2", 9), ("fab_t_l2", 9), ("square_l2", 1),
        ("apgd_ce_l1", 5), ("apgd_t_l1", 5), ("fab_t_l1", 9), ("square_l1", 1)]
    assert all(s.only_robust for s in specs)
    assert {s.steps for s in specs if s.kind == "square"} == {5000}
    assert {s.steps for s in specs if s.kind.startswith("apgd")} == {100}
    assert [s.eps for s in specs if s.kind == "square"] == [0.3, 2.0, 10.0]


def test_strong_suite_is_autoattack_plus_sparse_rs_and_more_restarts():
    specs = suite.strong_additions("mnist", restarts=1)
    assert [(s.name, s.restarts) for s in specs] == [
        ("apgd_ce_linf", 1), ("apgd_t_linf", 9), ("fab_t_linf", 9), ("square_linf", 1),
        ("apgd_ce_l2", 1), ("apgd_t_l2", 9), ("fab_t_l2", 9), ("square_l2", 1),
        ("apgd_ce_l1", 5), ("apgd_t_l1", 5), ("fab_t_l1", 9), ("square_l1", 1),
        ("sparse_rs_l1", 1)]
    assert all(s.only_robust for s in specs)
    assert {s.steps for s in specs if s.kind in ("square", "sparse_rs")} == {5000}
    assert {s.steps for s in specs if s.kind.startswith("apgd")} == {100}
    # --restarts raises APGD-CE's restarts above AutoAttack's, never below.
    assert [s.restarts for s in suite.strong_additions("mnist", restarts=10)
            if s.kind == "apgd_ce"] == [10, 10, 10]
    assert {s.eps for s in suite.strong_additions("cifar10") if s.norm == "l1"} == {12.0}


# The "fast" budget of these attacks cannot cross the ball (foolbox's PGD-l_2 takes
# 2.5%-of-eps steps; random search needs a few hundred queries): give them enough.
ENOUGH_STEPS = {"fb_pgd_l2": 50, "square_l2": 1000, "square_l1": 3000, "sparse_rs_l1": 1000}
# Square in the l_1 ball is the weak one (AutoAttack's too: on the small-scale MSD model it
# left 86% of 100 digits robust after 1000 queries); measured here: 38% broken.
AT_LEAST_BROKEN = {"square_l1": 0.3}
# Pointwise takes ~2 s a digit (a minimization attack: one found example is the check).
DIGITS = {"pointwise_l2": 3, "pointwise_l1": 3}


@pytest.mark.parametrize("spec", SPECS + STRONG, ids=lambda s: s.name)
def test_attack_runs_and_stays_inside_its_radius(spec, trained):
    import dataclasses

    spec = dataclasses.replace(spec, steps=ENOUGH_STEPS.get(spec.name, spec.steps))
    model, x, y = trained
    x, y = x[:DIGITS.get(spec.name, 8)], y[:DIGITS.get(spec.name, 8)]
    logits_fn = lambda v: model(v, training=False)  # noqa: E731
    correct = checks.predict(logits_fn, x) == y
    assert correct.mean() > 0.5
    x_adv, found = adapters.run_attack(spec, logits_fn, x[correct], y[correct], seed=0)
    assert x_adv.shape == x[correct].shape and x_adv.min() >= 0 and x_adv.max() <= 1
    sound, norms, rejected = checks.verify(logits_fn, x[correct], y[correct], x_adv, found,
                                           norm=spec.norm)
    assert not rejected.any(), f"{spec.name} claimed unsound results"
    if not spec.minimizes:
        assert np.all(norms[sound] <= spec.eps * (1 + checks.RTOL))
        # At the paper's radius a weak two-epoch model falls to every attack: an attack
        # that does nothing (or claims nothing) fails here.
        least = AT_LEAST_BROKEN.get(spec.name, 0.5)
        assert sound.mean() >= least, f"{spec.name} broke only {sound.mean():.0%}"
    else:
        assert sound.any(), f"{spec.name} found no adversarial example at any norm"


def test_minimal_norm_attack_agrees_with_a_fixed_radius_run_on_a_known_case():
    # A linear two-class model: the smallest l_2 adversarial perturbation of x is the
    # distance to the hyperplane, |w.x + b| / ||w||. DDN's recorded norm must match it,
    # and a fixed-radius PGD-l_2 run breaks exactly the examples whose distance <= eps.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.normal(size=16).astype(np.float32)
    w /= np.linalg.norm(w)
    margins = np.linspace(0.06, 0.61, 12).astype(np.float32)  # distance to the boundary
    # One hyperplane w.v = w.0.5 through the middle of the box; x_i sits margin_i from it
    # along w (well inside the box), class 1 everywhere. The model is per example (an
    # attack may compute any subset of the batch).
    x = (0.5 + margins[:, None] * w[None, :]).astype(np.float32)
    assert x.min() > 0.05 and x.max() < 0.95
    wt, bt = tf.constant(w), tf.constant(-0.5 * float(w.sum()))

    def logits_fn(v):
        score = tf.reduce_sum(tf.reshape(tf.convert_to_tensor(v), [-1, 16]) * wt, 1)
        return tf.stack([tf.zeros_like(score), score + bt], 1)

    y = np.ones(12, np.int32)
    spec = suite.AttackSpec("ddn", "ddn", "l2", 0.3, 1, steps=200)
    x_adv, found = adapters.run_attack(spec, logits_fn, x, y)
    sound, norms, _ = checks.verify(logits_fn, x, y, x_adv, found, norm="l2")
    assert sound.all()
    np.testing.assert_allclose(norms, margins, rtol=0.05, atol=0.01)
    eps = 0.3
    direct = suite.AttackSpec("pgd_l2", "pgd", "l2", eps, 1, steps=50, alpha=0.05)
    xa, fa = adapters.run_attack(direct, logits_fn, x, y)
    s2, n2, _ = checks.verify(logits_fn, x, y, xa, fa, norm="l2")
    from_min_norms = checks.broken_at(sound, norms, eps)
    np.testing.assert_array_equal(checks.broken_at(s2, n2, eps), margins <= eps)
    # Recorded minimal norms give the same answer as the direct run away from the
    # boundary (DDN's norms carry a few % of slack).
    away = np.abs(margins - eps) > 0.03
    np.testing.assert_array_equal(from_min_norms[away], (margins <= eps)[away])


def test_added_attacks_run_only_on_examples_still_robust(trained, tmp_path):
    from msd_tf.evaluation import aggregate, runner

    model, x, y = trained
    x, y = x[:40], y[:40]
    import dataclasses

    # At eps = 0.1 FGSM leaves examples that APGD then breaks.
    specs = [dataclasses.replace(s, eps=0.1) for s in SPECS + STRONG
             if s.name in ("fgsm", "apgd_ce_linf", "square_linf")]
    computed = []
    config = EvalConfig("mnist", specs, output_dir=str(tmp_path), batch_size=20,
                        verbose=False)
    clean, records, _ = runner.run_suite(
        "m", "fingerprint", lambda v: model(v, training=False), x, y, config,
        on_compute=lambda a, b: computed.append((a, b)))
    fgsm, apgd_ce, sq = (records[n].broken() for n in ("fgsm", "apgd_ce_linf",
                                                       "square_linf"))
    assert fgsm.any() and (apgd_ce & ~fgsm).any()  # both break something
    # Examples FGSM broke were never attacked again; APGD's were skipped by Square.
    assert not (records["apgd_ce_linf"].sound & fgsm).any()
    assert not (records["square_linf"].sound & (fgsm | apgd_ce)).any()
    s = aggregate.aggregate(clean, records)
    # Per-attack rows of added attacks are cumulative; the norm's row is the union.
    assert s["attacks"]["apgd_ce_linf"]["acc"] == pytest.approx(np.mean(clean & ~fgsm & ~apgd_ce))
    assert s["norms"]["linf"]["acc"] == pytest.approx(np.mean(clean & ~fgsm & ~apgd_ce & ~sq))
    assert s["paper_only"]["linf"] == pytest.approx(np.mean(clean & ~fgsm))
    # Packed as AutoAttack does: the examples still robust fill batches of 20 across the
    # two windows of 20, and each batch's result lands on its own examples (the attack
    # run again by hand on each packed batch, with the batch's seed).
    todo = {"apgd_ce_linf": clean & ~fgsm, "square_linf": clean & ~fgsm & ~apgd_ce}
    for name, wanted in todo.items():
        packed = runner.pack(wanted, 20)
        assert [len(p) for p in packed][:-1] == [20] * (len(packed) - 1)
        assert sorted(np.concatenate(packed)) == list(np.flatnonzero(wanted))
        assert [b for a, b in computed if a == name] == list(range(len(packed)))
        assert records[name].profile["attacked"] == wanted.sum()
    spec = next(s for s in specs if s.name == "apgd_ce_linf")
    fn = lambda v: model(v, training=False)  # noqa: E731
    expected = np.zeros(len(x), bool)
    for b, idx in enumerate(runner.pack(todo["apgd_ce_linf"], 20)):
        x_adv, found = adapters.run_attack(spec, fn, x[idx], y[idx],
                                           seed=runner.attack_seed(0, "fingerprint",
                                                                   spec.name, b))
        expected[idx] = checks.verify(fn, x[idx], y[idx], x_adv, found, norm="linf")[0]
    np.testing.assert_array_equal(records["apgd_ce_linf"].sound, expected)
    # Rerun: nothing recomputed (the cache of a dependent attack is keyed by its inputs).
    computed.clear()
    runner.run_suite("m", "fingerprint", lambda v: model(v, training=False), x, y, config,
                     on_compute=lambda a, b: computed.append((a, b)))
    assert computed == []


def test_attack_selection_keeps_the_given_order_and_applies_overrides():
    from msd_tf.evaluation.pipeline import EvalError, build_suite

    specs = build_suite("mnist", ["cw_l2", "pgd_linf", "boundary"], restarts=1,
                        suite_name="paper", budget="paper", eps={}, only_robust=["cw_l2"],
                        steps={"boundary": 1000})
    assert [s.name for s in specs] == ["cw_l2", "pgd_linf", "boundary"]
    assert [s.only_robust for s in specs] == [True, False, False]
    assert specs[2].steps == 1000 and specs[0].steps == 1000  # C&W's own default
    with pytest.raises(EvalError, match="not in the run"):
        build_suite("mnist", ["pgd_linf"], restarts=1, suite_name="paper", budget="paper",
                    eps={}, only_robust=["ddn"])


def test_strong_suite_runs_fixed_radius_attacks_on_what_is_still_robust():
    # A fixed-radius attack cannot change the flag of an example already broken at eps;
    # minimization attacks give the curves and see every clean example.
    from msd_tf.evaluation.pipeline import build_suite

    specs = build_suite("mnist", None, restarts=1, suite_name="strong", budget="paper", eps={})
    paper = {s.name: s for s in specs[:len(suite.paper_suite("mnist"))]}
    assert {n for n, s in paper.items() if not s.only_robust} == {
        "gaussian_noise", "boundary", "deepfool", "pointwise_l2", "ddn", "cw_l2",
        "salt_pepper", "pointwise_l1"}
    assert all(s.only_robust for s in specs[len(paper):])
    plain = build_suite("mnist", None, restarts=1, suite_name="paper", budget="paper", eps={})
    assert not any(s.only_robust for s in plain)  # the paper suite: every attack on all
    # Without curves the minimization attacks too run on what is still robust only.
    lean = build_suite("mnist", None, restarts=1, suite_name="strong", budget="paper", eps={},
                       curves=False)
    assert all(s.only_robust for s in lean) and len(lean) == len(specs)


def test_prune_with_skips_what_an_earlier_evaluation_broke(trained, tmp_path):
    import dataclasses

    from msd_tf.evaluation import pipeline

    model, x, y = trained
    path = str(tmp_path / "m" / "saved_model")
    from msd_tf.export import export_saved_model

    export_saved_model(model, path)
    common = dict(dataset="mnist", data_dir=str(SHARED_MNIST), split="test[:40]",
                  num_examples=40, batch_size=20, verbose=False)
    first = [dataclasses.replace(s, eps=0.1) for s in SPECS if s.name == "fgsm"]
    pipeline.evaluate([path], EvalConfig(specs=first, output_dir=str(tmp_path / "a"),
                                         **common))
    later = [dataclasses.replace(s, eps=0.1, only_robust=True) for s in STRONG
             if s.name == "apgd_ce_linf"]
    computed = []
    pipeline.evaluate([path], EvalConfig(specs=later, output_dir=str(tmp_path / "b"),
                                         prune_with=str(tmp_path / "a"), **common),
                      on_compute=lambda a, b: computed.append(b))
    a = np.load(tmp_path / "a" / "per_example_m.npz")
    b = np.load(tmp_path / "b" / "per_example_m.npz")
    fgsm_broken = a["fgsm/sound"] & (a["fgsm/norm"] <= 0.1 * (1 + checks.RTOL))
    assert fgsm_broken.any()
    assert not (b["apgd_ce_linf/sound"] & fgsm_broken).any()  # never attacked again
    np.testing.assert_array_equal(a["example_key"], b["example_key"])
    # Other examples than the earlier evaluation's: refused.
    with pytest.raises(pipeline.EvalError, match="examples differ"):
        pipeline.evaluate([path], EvalConfig(specs=later, output_dir=str(tmp_path / "c"),
                                             prune_with=str(tmp_path / "a"),
                                             **dict(common, split="test[40:80]")))
