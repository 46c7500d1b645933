"""`--suite=tb19`: Tramer and Boneh's MNIST attacks (the paper's Table 5), their settings,
and one fast-budget evaluation of a tiny SavedModel in which every attack runs and every
claimed adversarial example passes `checks.verify`."""

import keras
import numpy as np
import pytest

from msd_tf.evaluation import adapters, suite
from msd_tf.evaluation.records import EvalConfig
from tests.conftest import SHARED_MNIST

TB19 = [("pgd_linf", "pgd", "linf"), ("hsj_linf", "hsj_linf", "linf"),
        ("pgd_l2", "pgd", "l2"), ("boundary", "boundary", "l2"), ("cw_l2", "cw", "l2"),
        ("slide", "slide", "l1"), ("pointwise_l1", "pointwise", "l1"), ("ead", "ead", "l1")]


def test_the_suite_is_tramer_and_bonehs_attack_set_run_once():
    specs = suite.tb19_suite("mnist")
    assert [(s.name, s.kind, s.norm) for s in specs] == TB19
    assert [s.restarts for s in specs] == [1] * 8 and not any(s.only_robust for s in specs)
    assert {s.norm: s.eps for s in specs} == {"linf": 0.3, "l2": 2.0, "l1": 10.0}
    by = {s.name: s for s in specs}
    # PGD: 100 steps of 2.5 eps / 100 from a random start, on the margin loss.
    for name, eps in (("pgd_linf", 0.3), ("pgd_l2", 2.0)):
        s = by[name]
        assert s.steps == 100 and s.alpha == pytest.approx(2.5 * eps / 100)
        assert (s.option("loss"), s.option("random_start")) == ("margin", True)
    assert by["pgd_linf"].alpha == pytest.approx(0.0075) and by["pgd_l2"].alpha == 0.05
    # SLIDE: 100 steps, a = 0.5, the 99th percentile, a random start, the margin loss.
    s = by["slide"]
    assert (s.steps, s.alpha, s.option("q"), s.option("random_start"), s.option("loss")) \
        == (100, 0.5, 99.0, True, "margin")
    # Boundary: 5000 iterations of up to 25 directions; C&W: CleverHans' settings with
    # 9 binary search steps; EAD: 1000 iterations; HopSkipJump: foolbox's 64.
    assert by["boundary"].steps == 25 * 5000
    cw = by["cw_l2"]
    assert (cw.steps, cw.option("binary_search_steps"), cw.option("stepsize"),
            cw.option("initial_const")) == (1000, 9, 5e-3, 1e-2)
    assert by["ead"].steps == 1000 and by["ead"].minimizes
    assert by["hsj_linf"].steps == 64 and by["hsj_linf"].minimizes
    assert not by["slide"].minimizes and not by["pgd_l2"].minimizes
    # Radii can be overridden; the fast budget keeps the attack set.
    assert {s.eps for s in suite.tb19_suite("mnist", eps={"l1": 12.0}) if s.norm == "l1"} \
        == {12.0}
    fast = suite.tb19_suite("mnist", budget="fast")
    assert [(s.name, s.kind, s.norm, s.restarts) for s in fast] == [t + (1,) for t in TB19]
    assert all(s.steps <= 50 for s in fast)


def test_build_suite_wires_tb19_and_ignores_restarts():
    from msd_tf.evaluation.pipeline import build_suite

    specs = build_suite("mnist", None, restarts=10, suite_name="tb19", budget="paper", eps={})
    assert specs == suite.tb19_suite("mnist")
    picked = build_suite("mnist", ["slide", "ead"], restarts=1, suite_name="tb19",
                         budget="fast", eps={}, steps={"ead": 20})
    assert [(s.name, s.steps) for s in picked] == [("slide", 5), ("ead", 20)]


def test_options_are_checked_and_defaults_are_unchanged():
    # The paper suite's kinds keep their behaviour: no options, C&W's 5 binary search
    # steps, our PGD's cross-entropy and random start on later restarts only.
    paper = {s.name: s for s in suite.paper_suite("mnist")}
    assert all(s.options == () for s in paper.values())
    assert paper["cw_l2"].option("binary_search_steps") == 5
    assert (paper["pgd_linf"].option("loss"), paper["pgd_linf"].option("random_start")) \
        == ("ce", None)
    with pytest.raises(ValueError, match="takes no option"):
        suite.AttackSpec("x", "fgsm", "linf", 0.3, options={"loss": "margin"})
    with pytest.raises(ValueError, match="`loss` must be one of"):
        suite.AttackSpec("x", "pgd", "linf", 0.3, options={"loss": "hinge"})
    a = suite.AttackSpec("x", "pgd", "linf", 0.3, options={"random_start": True, "loss": "ce"})
    b = suite.AttackSpec("x", "pgd", "linf", 0.3, options=(("loss", "ce"),
                                                           ("random_start", True)))
    assert a == b and a.options == (("loss", "ce"), ("random_start", True))
    assert "loss=ce, random_start=True" in a.label()


def test_pgd_takes_the_margin_loss_and_a_random_start_on_its_one_run():
    # A linear two-class model whose logits differ by ~100: the softmax is saturated, so
    # the cross-entropy's gradient underflows to 0 and PGD on it does not move, while the
    # margin loss (score of 1) - (score of 0) has gradient 2e-3 w: PGD at l_inf on it
    # ends at x + eps sign(w). The option reaches the attack.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = rng.normal(size=32).astype(np.float32)
    wt = tf.constant(w)

    def logits_fn(v):
        score = tf.reduce_sum(tf.reshape(tf.convert_to_tensor(v), [-1, 32]) * wt, 1) * 1e-3
        return tf.stack([-score + 100.0, score], 1)  # never fooled: every step runs

    x = np.full((4, 32), 0.5, np.float32)
    y = np.zeros(4, np.int32)

    def pgd(steps, **options):
        spec = suite.AttackSpec("p", "pgd", "linf", 0.3, steps=steps, alpha=0.0075,
                                options=options)
        x_adv, found = adapters.run_attack(spec, logits_fn, x, y, seed=1)
        assert not found.any()
        return x_adv - x

    np.testing.assert_allclose(pgd(100, loss="margin", random_start=True),
                               np.broadcast_to(0.3 * np.sign(w), x.shape), atol=1e-5)
    np.testing.assert_array_equal(pgd(100), 0.0)  # cross-entropy, from 0: stuck
    # One step from 0 is alpha sign(w); from the random start it is elsewhere.
    np.testing.assert_allclose(pgd(1, loss="margin"),
                               np.broadcast_to(0.0075 * np.sign(w), x.shape), atol=1e-6)
    started = pgd(1, loss="margin", random_start=True)
    assert np.abs(started).max() > 0.1 and np.abs(started).max() <= 0.3 + 1e-6


@pytest.fixture(scope="module")
def tiny_saved_model(tmp_path_factory):
    from msd_tf import data
    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    x, y = data.load_arrays("mnist", "test[100:1100]", str(SHARED_MNIST))
    model = small_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=100, epochs=1, verbose=0)
    return export_saved_model(model, str(tmp_path_factory.mktemp("tb19") / "m" /
                                         "saved_model"))


def test_fast_evaluation_runs_every_attack_and_every_claim_is_sound(tiny_saved_model,
                                                                    tmp_path):
    from msd_tf.evaluation import pipeline

    specs = pipeline.build_suite("mnist", None, restarts=1, suite_name="tb19", budget="fast",
                                 eps={})
    config = EvalConfig("mnist", specs, data_dir=str(SHARED_MNIST), split="test[:12]",
                        num_examples=12, output_dir=str(tmp_path), batch_size=6,
                        suite_name="tb19", verbose=False)
    result = pipeline.evaluate([tiny_saved_model], config).models["m"]
    assert list(result.records) == [name for name, _, _ in TB19]
    clean = result.clean
    assert clean.sum() >= 6
    for name, record in result.records.items():
        # Every claim the runner checked (`checks.verify`: a fresh forward pass, the box,
        # the NumPy norm) held; the attack ran on every clean example.
        assert not record.rejected.any(), f"{name}: a claimed example failed the checks"
        assert record.profile["attacked"] == clean.sum(), name
        assert record.sound[clean].any(), f"{name} found nothing on a one-epoch model"
        if not record.spec.minimizes:
            assert np.all(record.norms[record.sound] <= record.spec.eps * (1 + 1e-4))
    summary = result.summary
    assert set(summary["norms"]) == {"linf", "l2", "l1"}
    assert summary["all"] <= min(v["acc"] for v in summary["norms"].values())
