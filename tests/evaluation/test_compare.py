"""msd_tf.evaluation.compare and `python -m msd_tf.compare`: the sign test against brute
force, robust flags against a hand-computed case, and the command's bad input."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from msd_tf.evaluation import compare, report
from msd_tf.evaluation.records import AttackRecord
from msd_tf.evaluation.suite import AttackSpec

REPO = Path(__file__).resolve().parents[2]


def _p_by_enumeration(only_a: int, only_b: int) -> float:
    """Every sequence of n fair coin flips; the share whose head count is at most as
    likely as the observed one (the two-sided exact test's definition)."""
    n = only_a + only_b
    counts = [sum(s) for s in itertools.product((0, 1), repeat=n)]
    observed = math.comb(n, only_a)
    return sum(math.comb(n, c) <= observed for c in counts) / 2 ** n


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8, 11])
def test_sign_test_matches_enumeration(n):
    for only_a in range(n + 1):
        assert compare.sign_test_p(only_a, n - only_a) == pytest.approx(
            _p_by_enumeration(only_a, n - only_a), abs=1e-12)


def test_sign_test_large_counts():
    # By the probability-mass definition, summed over head counts (no enumeration).
    n, k = 38, 8
    pmf = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    expected = sum(p for p in pmf if p <= pmf[k])
    assert compare.sign_test_p(30, 8) == pytest.approx(expected, rel=1e-12)
    assert 4e-4 < compare.sign_test_p(30, 8) < 6e-4  # a 30-to-8 split of discordant digits
    assert compare.sign_test_p(8, 30) == compare.sign_test_p(30, 8)
    with pytest.raises(ValueError):
        compare.sign_test_p(-1, 3)


def _write_eval(folder: Path, models: dict, keys=("k0", "k1", "k2", "k3")) -> None:
    """An evaluation folder of 4 examples: one l_inf attack (eps 0.3) and one l_2
    attack (eps 2) per model, as msd_tf.evaluate writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    suite = [{"name": "pgd_linf", "norm": "linf", "eps": 0.3},
             {"name": "pgd_l2", "norm": "l2", "eps": 2.0}]
    for name, (clean, linf_sound, l2_sound, l2_norm) in models.items():
        records = {
            "pgd_linf": AttackRecord(AttackSpec("pgd_linf", "pgd", "linf", 0.3),
                                     np.array(linf_sound, bool), np.full(4, 0.3),
                                     np.zeros(4, bool), {}),
            "pgd_l2": AttackRecord(AttackSpec("pgd_l2", "pgd", "l2", 2.0),
                                   np.array(l2_sound, bool), np.array(l2_norm),
                                   np.zeros(4, bool), {})}
        report.save_per_example(str(folder / f"per_example_{name}.npz"), np.array(clean, bool),
                                records, np.array(keys))
    (folder / "results.json").write_text(json.dumps(
        {"suite": suite, "models": {n: {} for n in models}}))


CASE = {
    # clean, l_inf broken, l_2 sound, l_2 norms (3.0 > eps 2: not broken at the radius)
    "a": ([1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0.0, 1.0, 3.0, 0.0]),
    "b": ([1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 1], [0.0, 0.0, 0.0, 1.5]),
}


def test_robust_flags_hand_computed(tmp_path):
    _write_eval(tmp_path, CASE)
    flags = compare.robust_flags(str(tmp_path))
    a = flags["a"]
    np.testing.assert_array_equal(a["linf"], [False, True, True, False])
    np.testing.assert_array_equal(a["l2"], [True, False, True, False])
    np.testing.assert_array_equal(a["union"], [False, False, True, False])
    np.testing.assert_array_equal(flags["b"]["union"], [True, True, True, False])
    np.testing.assert_array_equal(a["clean"], [True, True, True, False])
    assert "l1" not in a  # no l_1 attack ran
    r = compare.compare_models(flags, "b", "a")
    assert (r["only_a"], r["only_b"], r["both"]) == (2, 0, 1)
    assert r["acc_a"] == 0.75 and r["acc_b"] == 0.25
    assert r["p"] == pytest.approx(0.5)  # 2 of 2 discordant: 2 * (1/4)


def test_compare_refuses_other_examples_and_unknown_names(tmp_path):
    _write_eval(tmp_path / "one", {"a": CASE["a"]})
    _write_eval(tmp_path / "two", {"b": CASE["b"]}, keys=("k0", "k1", "k2", "other"))
    flags = {**compare.robust_flags(str(tmp_path / "one")),
             **compare.robust_flags(str(tmp_path / "two"))}
    with pytest.raises(compare.CompareError, match="different examples"):
        compare.compare_models(flags, "a", "b")
    with pytest.raises(compare.CompareError, match="no model 'c'"):
        compare.compare_models(flags, "a", "c")
    with pytest.raises(compare.CompareError, match="no l1 attacks"):
        compare.compare_models(flags, "a", "a", "l1")
    with pytest.raises(compare.CompareError, match="results.json"):
        compare.robust_flags(str(tmp_path / "missing"))


def _run(*args):
    return subprocess.run([sys.executable, "-m", "msd_tf.compare", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_command_prints_the_table_and_one_error_line(tmp_path):
    _write_eval(tmp_path, CASE)
    res = _run(f"--eval_dir={tmp_path}", "--pairs=b:a", "--threats=union,linf")
    assert res.returncode == 0, res.stderr
    assert "| b | a | union | 75.0 | 25.0 | 2 | 0 | 0.5 |" in res.stdout
    assert "| b | a | linf | 100.0 | 50.0 | 2 | 0 | 0.5 |" in res.stdout
    for bad, says in (("--pairs=b", "--pairs wants"), ("--pairs=b:zz", "no model 'zz'"),
                      ("--threats=l3", "unknown --threats")):
        args = [f"--eval_dir={tmp_path}", "--pairs=b:a", bad]
        res = _run(*args)
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, \
            res.stderr
        assert says in errors[0]
