import numpy as np
import pytest

from msd_tf.evaluation import aggregate, checks, report
from msd_tf.evaluation.records import AttackRecord
from msd_tf.evaluation.suite import AttackSpec


def _rec(name, kind, norm, eps, sound, norms, rejected=None):
    sound = np.array(sound, bool)
    return name, AttackRecord(AttackSpec(name, kind, norm, eps), sound,
                              np.where(sound, np.array(norms, float), np.inf),
                              np.zeros(len(sound), bool) if rejected is None else rejected, {})


def test_aggregation_is_a_per_example_worst_case_on_a_hand_made_table():
    # 6 examples; example 5 is misclassified without attack.
    clean = np.array([1, 1, 1, 1, 1, 0], bool)
    records = dict([
        _rec("pgd_linf", "pgd", "linf", 0.3, [1, 0, 0, 0, 0, 0], [0.3, 0, 0, 0, 0, 0]),
        _rec("fgsm", "fgsm", "linf", 0.3, [0, 1, 0, 0, 0, 0], [0, 0.3, 0, 0, 0, 0]),
        _rec("pgd_l2", "pgd", "l2", 2.0, [1, 0, 1, 0, 0, 0], [2, 0, 1.5, 0, 0, 0]),
        # A minimization attack that found example 3 only at norm 2.5 > eps: not broken.
        _rec("ddn", "ddn", "l2", 2.0, [0, 0, 0, 1, 0, 0], [0, 0, 0, 2.5, 0, 0]),
        _rec("pgd_l1", "pgd", "l1", 10.0, [0, 0, 0, 0, 0, 0], [0] * 6),
    ])
    s = aggregate.aggregate(clean, records)
    assert s["clean"] == pytest.approx(5 / 6)
    # Per attack: accuracy = clean and not broken.
    assert s["attacks"]["pgd_linf"]["acc"] == pytest.approx(4 / 6)
    assert s["attacks"]["fgsm"]["acc"] == pytest.approx(4 / 6)
    assert s["attacks"]["ddn"]["acc"] == pytest.approx(5 / 6)
    # Per threat model: broken by ANY attack of it (examples 0, 1 for linf): 3/6, not the
    # average (4/6) of its rows.
    assert s["norms"]["linf"]["acc"] == pytest.approx(3 / 6)
    assert s["norms"]["l2"]["acc"] == pytest.approx(3 / 6)
    assert s["norms"]["l1"]["acc"] == pytest.approx(5 / 6)
    # All attacks: robust examples are 3 and 4 only.
    assert s["all"] == pytest.approx(2 / 6)
    assert s["all"] <= min(v["acc"] for v in s["norms"].values()) <= s["clean"]


def test_accuracy_from_minimal_norms_equals_direct_threshold_counting():
    clean = np.array([1, 1, 1, 1, 0], bool)
    records = dict([
        _rec("ddn", "ddn", "l2", 2.0, [1, 1, 1, 0, 0], [0.5, 1.0, 3.0, 0, 0]),
        _rec("cw_l2", "cw", "l2", 2.0, [1, 0, 1, 0, 0], [0.7, 0, 1.5, 0, 0]),
    ])
    radii = [0.0, 0.5, 0.9, 1.0, 1.5, 2.0, 5.0]
    got = aggregate.accuracy_at_radii(clean, records, "l2", radii)
    # Smallest norms per example: 0.5, 1.0, 1.5, inf (and example 4 misclassified).
    want = [4 / 5, 3 / 5, 3 / 5, 2 / 5, 1 / 5, 1 / 5, 1 / 5]
    np.testing.assert_allclose(got, want)
    # At the radius, the curve agrees with the threat model's aggregated accuracy.
    assert got[5] == pytest.approx(aggregate.aggregate(clean, records)["norms"]["l2"]["acc"])


def test_soundness_check_rejects_planted_bad_results():
    w = np.zeros((4, 3), np.float32)
    w[0, 1] = 1.0  # logits = [0, x0, 0]: class 1 iff x0 > 0

    def logits_fn(x):
        x = np.asarray(x).reshape(len(x), -1)
        return np.stack([np.full(len(x), 0.5), x[:, 0], np.zeros(len(x))], 1)

    x = np.zeros((5, 4), np.float32)
    y = np.zeros(5, np.int32)  # all predicted 0 (0.5 > 0)
    x_adv = x.copy()
    x_adv[0, 0] = 0.9  # good: class 1, linf 0.9 <= eps 1.0
    x_adv[1, 0] = 0.4  # still class 0: not misclassified -> reject
    x_adv[2, 0] = 1.5  # outside [0, 1] -> reject
    x_adv[3, 0] = 0.9
    x_adv[3, 1] = 0.0
    x_adv[4, 0] = 1.0  # not claimed: ignored
    found = np.array([1, 1, 1, 1, 0], bool)
    sound, norms, rejected = checks.verify(logits_fn, x, y, x_adv, found, norm="linf")
    np.testing.assert_array_equal(sound, [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(rejected, [0, 1, 1, 0, 0])
    np.testing.assert_allclose(norms[[0, 3]], 0.9)
    assert np.isinf(norms[[1, 2, 4]]).all()
    # Radius check with the relative tolerance: a norm just above eps is not broken.
    assert checks.broken_at(sound, norms, 0.9).tolist() == [1, 0, 0, 1, 0]
    assert not checks.broken_at(sound, norms, 0.9 / (1 + 2e-4)).any()


def test_reports_are_written(tmp_path):
    clean = np.array([1, 1, 0], bool)
    records = dict([_rec("pgd_linf", "pgd", "linf", 0.3, [1, 0, 0], [0.3, 0, 0])])
    s = aggregate.aggregate(clean, records)
    paths = report.write_reports({"a": s, "b": s}, str(tmp_path))
    md = open(paths["md"]).read()
    assert "| attack (threat model, radius) | a | b |" in md and "eps=0.3" in md
    assert "All attacks | 33.3 | 33.3" in md
    assert open(paths["csv"]).read().startswith("row,a,b")


def test_strong_suite_reports_what_only_the_added_attacks_break(tmp_path):
    clean = np.array([1, 1, 1, 1], bool)
    records = dict([
        _rec("pgd_linf", "pgd", "linf", 0.3, [1, 0, 0, 0], [0.3, 0, 0, 0]),
        _rec("apgd_t_linf", "apgd_t", "linf", 0.3, [1, 1, 0, 0], [0.3, 0.3, 0, 0]),
        _rec("pgd_l2", "pgd", "l2", 2.0, [0, 0, 1, 0], [0, 0, 1, 0]),
        _rec("apgd_ce_l2", "apgd_ce", "l2", 2.0, [0, 1, 0, 0], [0, 1, 0, 0]),
    ])
    s = aggregate.aggregate(clean, records)
    # linf: example 1 is broken only by APGD-T; l2: example 1 only by APGD-CE; over all
    # attacks, example 1 is broken by APGD only, example 0 and 2 by paper attacks.
    assert s["broken_only_by_added"] == {"linf": 0.25, "l2": 0.25, "all": 0.25}
    md = open(report.write_reports({"m": s}, str(tmp_path))["md"]).read()
    assert "| Broken only by the added attacks (all) | 25.0 |" in md


def test_curves_draw_only_measured_values(tmp_path):
    # PGD (fixed radius 0.3) broke example 0 with a perturbation of l_inf 0.1; DDN
    # (minimization) found example 1 at l_2 1.0. Below eps, PGD measured nothing:
    # the l_inf panel gets only the point at eps; the l_2 curve counts DDN alone.
    clean = np.array([1, 1, 1, 1], bool)
    records = dict([
        _rec("pgd_linf", "pgd", "linf", 0.3, [1, 0, 0, 0], [0.1, 0, 0, 0]),
        _rec("pgd_l2", "pgd", "l2", 2.0, [0, 0, 1, 0], [0, 0, 0.5, 0]),
        _rec("ddn", "ddn", "l2", 2.0, [0, 1, 0, 0], [0, 1.0, 0, 0]),
    ])
    s = aggregate.aggregate(clean, records)
    curves = {}
    for norm, info in s["norms"].items():
        radii = np.linspace(0, 2 * info["eps"], 5)
        curves[norm] = {"radii": radii, "eps": info["eps"], "models": {"m": {
            "curve": aggregate.accuracy_at_radii(clean, records, norm, radii,
                                              minimization_only=True),
            "at_eps": info["acc"]}}}
    drawn = report.plot_curves(curves, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0
    [(label, xs, ys)] = drawn[("linf", "m")]
    assert "fixed radius" in label and xs.tolist() == [0.3] and ys.tolist() == [75.0]
    point, line = drawn[("l2", "m")]
    assert point[1].tolist() == [2.0] and point[2].tolist() == [50.0]
    assert "minimum-norm" in line[0]
    # Radii 0, 1, 2, 3, 4: DDN's example 1 counts from radius 1; PGD's example 2 never.
    np.testing.assert_allclose(line[2], [100, 75, 75, 75, 75])


def test_example_titles_mark_examples_beyond_the_radius():
    text, color = report.example_title("l2", 2.87, 2.0, 7)
    assert text == "l_2 2.87 > eps 2\npred 7" and color == "red"
    text, color = report.example_title("l1", 9.5, 10.0, 3)
    assert text == "l_1 9.5 <= eps 10\npred 3" and color == "black"
    # Within the soundness tolerance counts as within the radius.
    assert report.example_title("linf", 0.3 * (1 + 5e-5), 0.3, 1)[1] == "black"


def test_warnings_open_the_report(tmp_path):
    clean = np.array([1, 0], bool)
    s = aggregate.aggregate(clean, dict([_rec("pgd_linf", "pgd", "linf", 0.3, [0, 0], [0, 0])]))
    md = open(report.write_reports(
        {"a": s, "b": s}, str(tmp_path),
        extra={"warnings": {"a": ["outputs look like probabilities"], "b": []}})["md"]).read()
    assert md.startswith("> **WARNING [a]: outputs look like probabilities**")
    assert md.count("WARNING") == 1


def test_autoattack_alone_reports_no_paper_comparison():
    # Without the paper's attacks there is nothing "only the added attacks" broke: the
    # rows would read as clean minus robust accuracy (they did, 74.2% for l_inf).
    clean = np.array([1, 1, 1, 1], bool)
    records = dict([_rec("apgd_t_linf", "apgd_t", "linf", 0.3, [1, 1, 0, 0], [0.3, 0.3, 0, 0])])
    s = aggregate.aggregate(clean, records)
    assert "broken_only_by_added" not in s and s["norms"]["linf"]["acc"] == 0.5
