"""The paper's protocol (msd_tf.protocol), the budgets, and tables assembled from committed
per-model results (msd_tf.benchmarks): against set arithmetic, each recipe's own step cost,
and a toy table computed fresh."""

import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from msd_tf import data, protocol
from msd_tf.benchmarks import budgets, reports, runs, search, tables, units
from tests.conftest import REPO


def _split_set(split, size):
    base, sl = data.parse_split(split)
    return base, set(range(size)[sl])


@pytest.mark.parametrize("a, b", [
    ("train", "train[55000:]"), ("train[:55000]", "train[55000:]"), ("test[1000:]", "test[:1000]"),
    ("test[500:1500]", "test[:1000]"), ("test[-100:]", "test[9950:]"), ("train", "test[:1000]"),
    ("test[1000:1200]", "test[:100]"), ("train[10:20]", "train[15:]")])
def test_overlap_is_the_set_intersection(a, b):
    (base_a, sa), (base_b, sb) = (_split_set(s, protocol.SPLIT_SIZES["mnist"][
        data.parse_split(s)[0]]) for s in (a, b))
    assert protocol.overlap(a, b) == (len(sa & sb) if base_a == base_b else 0)


@pytest.fixture
def test_only_dir(tmp_path, mnist_dir):
    folder = tmp_path / "test_only"
    folder.mkdir()
    for name in os.listdir(mnist_dir):
        if name.startswith("t10k"):
            os.symlink(os.path.join(mnist_dir, name), folder / name)
    return str(folder)


def test_the_paper_protocol_and_the_test_only_fallback(mnist_dir, test_only_dir):
    assert data.has_split("mnist", "train", str(mnist_dir))
    assert not data.has_split("mnist", "train[:10]", test_only_dir)
    assert data.has_split("mnist", "test", test_only_dir)
    assert protocol.resolve("mnist", str(mnist_dir), "train", "test[:1000]") == \
        ("train", "test[:1000]", None)
    for split in ("train", "train[:12000]"):
        train, evaluated, note = protocol.resolve("mnist", test_only_dir, split, "test[:1000]")
        assert (train, evaluated) == ("test[1000:]", "test[:1000]")
        assert "only the test split" in note and "not the paper's protocol" in note
    # No fallback where it would evaluate on training or fallback-training digits.
    for evaluated in ("train[55000:]", "test[500:1500]"):
        with pytest.raises(protocol.ProtocolError, match="holds only the test split"):
            protocol.resolve("mnist", test_only_dir, "train[:55000]", evaluated)
    with pytest.raises(protocol.ProtocolError, match="share 500 examples"):
        protocol.resolve("mnist", str(mnist_dir), "test[500:]", "test[:1000]")
    assert protocol.name_of("train", "test[:1000]") == "paper"
    assert protocol.name_of("test[1000:]", "test[:1000]") == "test-only"


def test_a_tuning_split_is_never_test_digits_nor_trained_on():
    protocol.check_tuning("train[:55000]", "train[55000:56000]")
    with pytest.raises(protocol.ProtocolError, match="is test digits"):
        protocol.check_tuning("train[:55000]", "test[:1000]")
    with pytest.raises(protocol.ProtocolError, match="shares 1000 digits"):
        protocol.check_tuning("train", "train[59000:]")


def test_training_on_a_test_only_folder_says_so(tmp_path, test_only_dir):
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "msd_tf.main", "--flagfile=flags/smoke.cfg",
         f"--data_dir={test_only_dir}", "--train_split=train", "--eval_split=test[:1000]",
         "--steps_per_epoch=1",
         f"--output_dir={out}"], cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert res.returncode == 0, res.stderr[-2000:]
    notes = [line for line in res.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "holds only the test split" in notes[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "test-only" and summary["train_split"] == "test[1000:]"
    meta = json.loads((out / "saved_model" / "msd_tf.json").read_text())
    assert meta["train_split"] == "test[1000:]" and meta["protocol"] == "test-only"


def test_every_budgeted_recipe_spends_its_share_of_its_budget():
    # The planned passes from each recipe's own step cost (budgets.step_cost, checked
    # against closed forms in test_union) on the 60,000 training digits.
    from msd_tf.flags import parse_config

    checked = 0
    for bench in tables.BENCHMARKS.values():
        for unit in bench.units:
            if bench.budget is None or unit.share is None:
                continue
            config = parse_config(list(unit.recipe))
            assert (config.train_split, config.eval_split) == ("train", "test[:1000]")
            plan = budgets.planned(config, 60000)
            assert budgets.check(plan.passes, bench.budget, unit.share) is None, unit.recipe
            checked += 1
    assert checked >= 13
    assert "0.10 x its share" in budgets.check(280000.0, budgets.BUDGETS["S"] / 10 * 1.0, 10.0)


def test_a_variant_with_another_step_cost_is_recut_to_the_same_budget(mnist_dir):
    from msd_tf.flags import parse_config

    s = search.Search(("--flagfile=flags/mnist/S/msd.cfg",), {}, "unused",
                      data_dir=str(mnist_dir), budget=budgets.BUDGETS["S"])

    # 55,000 tuning-training digits, epochs of 100 steps: MSD-5 costs 28 passes an
    # example, MSD-3 3 x (1 + 3) + 2 forwards and 3 + 1 backwards = 18 (test_union's
    # closed form), so it trains 2.862 M / (100 x 100 x 18) = 15.9 -> 16 epochs.
    assert budgets.fit(parse_config(["--flagfile=flags/mnist/S/msd.cfg"]),
                       budgets.BUDGETS["S"], 55000) == []  # 2.80 M: already the budget
    k3 = parse_config(["--flagfile=flags/mnist/S/msd.cfg", "--msd_steps=3"])
    assert budgets.fit(k3, budgets.BUDGETS["S"], 55000) == ["--epochs=16",
                                                           "--lr_epochs=0,6.4,16"]
    assert search.variant_flags(s, ["--msd_steps=3"])[-2:] == ["--epochs=16",
                                                                "--lr_epochs=0,6.4,16"]


def _reproduce(results, work, *extra):
    return subprocess.run(
        [sys.executable, "-m", "msd_tf.reproduce", "--table=3", "--scale=smoke",
         f"--results_dir={results}", f"--work_dir={work}", "--data_dir=../shared/data/mnist",
         *extra], cwd=REPO,
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


MEASURED = ("accuracy", "paper_attacks", "robust", "compute", "key", "recipe", "evaluation",
            "inputs", "epochs", "suite", "train_split", "eval_split", "num_examples")


def test_a_table_from_committed_results_equals_one_computed_fresh(tmp_path, mnist_dir):
    # One unit of the two (each costs a training and an evaluation process, ~25 s); the
    # other is named as not measured. Several units: test_committed_only_assembles_...
    res = _reproduce(tmp_path / "a", tmp_path / "wa", "--models=msd")
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    table = (tmp_path / "a" / "table3_smoke.md").read_text()
    assert "Not measured yet: linf" in table
    committed = {"msd": json.loads((tmp_path / "a" / "smoke" / "msd.json").read_text())}
    # The result is what the run's evaluation measured.
    [run] = [p for p in (tmp_path / "wa" / "smoke").iterdir() if p.name.startswith("msd-")]
    [evaluated] = run.glob("eval-*/")
    results = json.loads((evaluated / "results.json").read_text())
    (s,) = results["models"].values()
    msd = committed["msd"]
    assert msd["accuracy"]["union"] == round(100 * s["all"], 1)
    assert msd["accuracy"]["linf"] == round(100 * s["norms"]["linf"]["acc"], 1)
    flags = np.load(evaluated / f"per_example_{run.name}.npz")
    robust = np.array([c == "1" for c in msd["robust"]["union"]])
    assert len(robust) == 8 and robust.mean() * 100 == pytest.approx(
        msd["accuracy"]["union"], abs=0.05)
    assert np.array_equal(np.array([c == "1" for c in msd["robust"]["clean"]]),
                          flags["clean"])
    assert "| MSD |" not in table and "| msd |" in table  # smoke units' labels
    # The first layer kept in the result is the model's (appendix E, from results alone).
    from msd_tf.evaluation import filters

    kernel = filters.first_conv_kernel(str(run / "saved_model"))
    np.testing.assert_allclose(msd["first_layer"]["kernel"], kernel, atol=5e-5)
    assert msd["first_layer"]["thresholding"] == filters.thresholding_filters(kernel).sum()
    # So is the training's per-epoch history (MSD's chosen norms: shares that sum to 1).
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(msd["history"]) == len(rows) == msd["epochs"]
    for kept, row in zip(msd["history"], rows):
        assert set(kept) == set(units.HISTORY_COLUMNS)
        assert kept["chose_l1"] == pytest.approx(float(row["chose_l1"]), abs=5e-5)
        assert sum(kept[f"chose_{n}"] for n in ("linf", "l2", "l1")) == pytest.approx(1, abs=1e-3)

    # Another table evaluating the same model its own way (as Table 5 does Table 3's MSD;
    # here: one attack more): the same run folder, trained once; its own evaluation folder
    # and result file; the attacks both run are read from the shared cache, and the result
    # counts their seconds as measured when they ran.
    bench = tables.BENCHMARKS[("3", "smoke")]
    attacks = next(f for f in bench.evaluation if f.startswith("--attacks="))
    other = tables.Benchmark("5", "smoke", bench.units[:1],
                             (*bench.evaluation, attacks + ",apgd_ce_l2"), None, "",
                             tag=".other")
    ctx = units.Context("smoke", other.evaluation, "../shared/data/mnist",
                        str(tmp_path / "a" / "smoke"), str(tmp_path / "wa" / "smoke"),
                        tag=".other")
    weights = sorted((run / "saved_model" / "variables").glob("*"))
    before = [w.read_bytes() for w in weights]
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        again = tables.produce(other, ctx)["msd"]
    finally:
        os.chdir(cwd)
    assert [p.name for p in (tmp_path / "wa" / "smoke").iterdir()
            if p.name.startswith("msd-")] == [run.name]
    assert len(list(run.glob("eval-*/"))) == 2 and again["suite"][-1] == "apgd_ce_l2"
    (first,) = json.loads((evaluated / "profile.json").read_text())["models"].values()
    ran = [name for name, p in first.items() if p["attacked"] > 0]
    assert again["seconds"]["cached_attacks"] == len(ran) > 0
    (second,) = json.loads(next(p for p in run.glob("eval-*/profile.json")
                                if p.parent != evaluated).read_text())["models"].values()
    assert not second["apgd_ce_l2"]["cached"]
    assert again["seconds"]["attacks"] == pytest.approx(
        sum(p["seconds"] for p in first.values()) + second["apgd_ce_l2"]["seconds"], abs=0.11)
    assert [w.read_bytes() for w in weights] == before  # not trained again
    assert (tmp_path / "a" / "smoke" / "msd.other.json").exists()
    (tmp_path / "a" / "smoke" / "msd.other.json").unlink()

    # Again: every result committed and current, nothing trained or evaluated.
    res = _reproduce(tmp_path / "a", tmp_path / "wa", "--models=msd")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("committed result") == 1 and "+ python" not in res.stdout
    assert (tmp_path / "a" / "table3_smoke.md").read_text() == table

    # From committed results alone (no run folder left), on another clone: the same.
    shutil.rmtree(tmp_path / "wa")
    shutil.copytree(tmp_path / "a", tmp_path / "clone")
    res = _reproduce(tmp_path / "clone", tmp_path / "wclone", "--models=msd")
    assert res.returncode == 0 and "+ python" not in res.stdout, res.stderr[-2000:]
    assert (tmp_path / "clone" / "table3_smoke.md").read_text() == table

    # Computed fresh elsewhere (seeded): the same numbers, digit for digit (one model of
    # the two, for the suite's time).
    res = _reproduce(tmp_path / "b", tmp_path / "wb", "--models=msd")
    assert res.returncode == 0, res.stderr[-2000:]
    fresh = json.loads((tmp_path / "b" / "smoke" / "msd.json").read_text())
    assert {k: committed["msd"][k] for k in MEASURED} == {k: fresh[k] for k in MEASURED}


def test_a_changed_recipe_or_evaluation_is_not_reused(tmp_path, mnist_dir, capsys):
    bench = tables.BENCHMARKS[("3", "smoke")]
    ctx = units.Context("smoke", bench.evaluation, None, str(tmp_path / "r"),
                        str(tmp_path / "w"), dry_run=True)
    unit = bench.units[0]
    key = units.key_of(units.describe(unit, ctx))
    units.save_result({"key": key, "name": unit.name}, units.result_path(unit, ctx))
    assert units.load_result(unit, ctx, key)[0] == {"key": key, "name": unit.name}
    changed = [units.Unit(unit.name, unit.label, (*unit.recipe, "--seed=1")),
               units.Unit(unit.name, unit.label, (*unit.recipe, "--flagfile=flags/smoke.cfg",
                                                  "--l1_eps=9"))]
    for other in changed:
        other_key = units.key_of(units.describe(other, ctx))
        assert other_key != key
        result, why = units.load_result(other, ctx, other_key)
        assert result is None and "is stale" in why
    other_eval = units.Context("smoke", (*bench.evaluation, "--num_examples=7"), None,
                               ctx.results_dir, ctx.work_dir, dry_run=True)
    assert units.key_of(units.describe(unit, other_eval)) != key
    # The table command trains and evaluates a stale unit again (here: prints the commands).
    stale = tables.Benchmark("3", "smoke", (changed[0],), bench.evaluation, None, "")
    tables.produce(stale, ctx)
    out = capsys.readouterr().out
    assert "is stale" in out and "+ python -m msd_tf.main" in out
    assert "+ python -m msd_tf.evaluate" in out


def test_committed_only_assembles_the_current_results_and_names_the_rest(tmp_path, mnist_dir,
                                                                        capsys):
    bench = tables.BENCHMARKS[("3", "smoke")]
    ctx = units.Context("smoke", bench.evaluation, None, str(tmp_path / "r"),
                        str(tmp_path / "w"))
    msd, linf = bench.units
    key = units.key_of(units.describe(msd, ctx))
    result = dict(_fake_result("msd", "msd", (90.0, 10.0, 20.0, 30.0, 5.0)), key=key,
                  paper_attacks={"union": 7.0}, suite=["pgd_linf"], precision="float32",
                  seconds={"train": 60.0, "evaluate": 120.0}, train_split="train",
                  eval_split="test[:100]", num_examples=8, machine="m", git_commit="c",
                  date="d")
    units.save_result(result, units.result_path(msd, ctx))
    units.save_result(dict(result, name="linf", key="0" * 64), units.result_path(linf, ctx))
    results = tables.produce(bench, ctx, committed_only=True)
    assert list(results) == ["msd"] and results["msd"]["accuracy"]["union"] == 5.0
    out = capsys.readouterr().out
    assert "is stale" in out and "left out" in out and "+ python" not in out
    assert not (tmp_path / "w").exists()  # nothing trained
    with open(reports.write(bench, results, str(tmp_path / "r"))["md"]) as f:
        text = f.read()
    assert "| msd | 90.0 (98.3, -8.3) |" in text and "| linf |" not in text
    assert "Not measured yet: linf (" in text


def test_a_committed_result_is_checked_against_its_budget_without_tracing(tmp_path, mnist_dir,
                                                                         monkeypatch):
    # Its key holds the recipe and BEHAVIOUR_VERSION, so the passes it recorded are what its
    # recipe plans: no training step is traced (no TensorFlow), and a budget that moved
    # since still refuses it. A unit left out by --committed_only is not planned at all.
    def no_trace(config):
        raise AssertionError("a training step was traced")

    monkeypatch.setattr(budgets, "step_cost", no_trace)
    smoke = tables.BENCHMARKS[("3", "smoke")]
    ctx = units.Context("smoke", smoke.evaluation, None, str(tmp_path / "r"),
                        str(tmp_path / "w"))
    msd = smoke.units[0]
    key = units.key_of(units.describe(msd, ctx))
    result = dict(_fake_result("msd", "msd", (90.0, 10.0, 20.0, 30.0, 5.0)), key=key)
    result["compute"]["planned_passes"] = 1e6
    units.save_result(result, units.result_path(msd, ctx))
    for budget, refused in ((1e6 / 1.02, False), (1e6 / 0.9, True), (1e7, True)):
        budgeted = dataclasses.replace(ctx, budget=budget)
        if refused:
            with pytest.raises(runs.BenchmarkError, match="x its share"):
                tables.produce(smoke, budgeted, committed_only=True)
        else:
            assert list(tables.produce(smoke, budgeted, committed_only=True)) == ["msd"]


@pytest.mark.parametrize("args, message", [
    (["--table=4", "--scale=S"], "--table=4 has no --scale=S"),
    (["--table=3", "--scale=smoke", "--models=msd,foo"], "unknown --models ['foo']"),
    (["--data_dir=/no/such/dir"], "--data_dir /no/such/dir"),
    (["--table=5", "--scale=paper"], "--table=5 has no --scale=paper"),
    (["--table=union", "--scale=paper", "--models=foo"], "unknown --models ['foo'] for"),
])
def test_reproduce_bad_input_gives_one_error_line(tmp_path, args, message):
    res = subprocess.run([sys.executable, "-m", "msd_tf.reproduce", *args,
                          f"--results_dir={tmp_path}", f"--work_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def test_the_c2_grid_is_the_papers_step_size_space_at_one_budget(tmp_path, mnist_dir):
    import itertools

    grid = search.grid_variants(search.C2_GRID)
    want = set(itertools.product((0.75, 0.8, 1.0, 2.0), (0.1, 0.2), (0.01, 0.02, 0.03)))
    got = {tuple(float(f.split("=")[1]) for f in flags) for flags in grid.values()}
    assert len(grid) == 24 and got == want
    res = subprocess.run([sys.executable, "-m", "msd_tf.tune", "--grid=c2", "--dry_run",
                          "--recipe=--flagfile=flags/mnist/S/msd.cfg",
                          f"--data_dir={mnist_dir}", f"--output_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1500:]
    trains = [line for line in res.stdout.splitlines() if "-m msd_tf.main" in line]
    assert len(trains) == 25  # the recipe itself and the 24 points
    assert sum("--l1_alpha=0.75" in t and "--l2_alpha=0.2" in t and "--linf_alpha=0.03" in t
               for t in trains) == 1


def test_tune_refuses_test_digits(tmp_path):
    res = subprocess.run([sys.executable, "-m", "msd_tf.tune",
                          "--recipe=--flagfile=flags/smoke.cfg", "--tune_split=test[:100]",
                          f"--output_dir={tmp_path}"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "is test digits" in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())


def test_the_evaluation_warns_when_a_model_trained_on_evaluated_digits():
    from msd_tf.evaluation.pipeline import _trained_on_evaluated

    assert _trained_on_evaluated("train", "test[:1000]", 1000, "mnist") == []
    assert _trained_on_evaluated(None, "test[:10]", 10, "mnist") == []  # not our export
    # test[500:] evaluated on its first 1000 digits: 500-1499, of which 1000-1499 trained.
    [warning] = _trained_on_evaluated("test[1000:]", "test[500:]", 1000, "mnist")
    assert "holds 500 of the 1000 evaluated examples (test[500:1500])" in warning


def _fake_result(name, label, acc, passes=2.8e6, alpha=0.1, kernel=None):
    layer = None
    if kernel is not None:
        from msd_tf.evaluation import filters

        layer = {"filters": kernel.shape[-1], "kernel": kernel.tolist(), "ratio": 0.25,
                 "thresholding": int(filters.thresholding_filters(kernel).sum())}
    return {"name": name, "label": label, "accuracy": dict(zip(reports.COLS, acc)),
            "compute": {"total_passes": passes}, "first_layer": layer,
            "threats": [{"norm": "linf", "alpha": alpha}, {"norm": "l1", "alpha": 6.0}]}


def test_section_f_reports_the_difference_to_the_full_msd():
    bench = tables.BENCHMARKS[("F", "S")]
    results = {"msd": _fake_result("msd", "MSD", (97.0, 50.0, 60.0, 55.0, 45.0)),
               "msd_linf_l1": _fake_result("msd_linf_l1", "MSD, l_inf + l_1 only",
                                           (97.4, 51.5, 55.2, 54.0, 41.1), 2.7e6)}
    results["msd"]["paper_attacks"] = dict(linf=60.0, l2=70.0, l1=80.0, union=58.0)
    results["msd_linf_l1"]["paper_attacks"] = dict(linf=61.2, l2=66.0, l1=80.5, union=57.0)
    lines, data = reports.section_f(bench, results)
    assert data["difference"] == {"clean": 0.4, "linf": 1.5, "l2": -4.8, "l1": -1.0,
                                  "union": -3.9}
    assert data["paper_attacks_difference"] == {"clean": None, "linf": 1.2, "l2": -4.0,
                                                "l1": 0.5, "union": -1.0}
    assert "| difference | - | +1.2 | -4.0 | +0.5 | -1.0 | |" in lines
    assert "| difference | +0.4 | +1.5 | -4.8 | -1.0 | -3.9 | |" in lines
    assert "| MSD, l_inf + l_1 only | 97.4 | 51.5 | 55.2 | 54.0 | 41.1 | 2.70 |" in lines


def test_table5_puts_tramer_and_boneh_beside_the_strong_suite_on_the_same_digits(mnist_dir):
    # Table 5's main result is Table 3's MSD result (one key, one committed file); Tramer
    # and Boneh's evaluation is its further evaluation.
    five, three = tables.BENCHMARKS[("5", "S")], tables.BENCHMARKS[("3", "S")]
    msd3 = next(u for u in three.units if u.name == "msd")
    keys = [units.key_of(units.describe(unit, units.Context("S", b.evaluation, str(mnist_dir),
                                                                "r", "w")))
            for unit, b in ((five.units[0], five), (msd3, three))]
    assert keys[0] == keys[1] and five.also == (tables.TB19,) and five.tag == ""
    # By hand: their evaluation attacked the first 5 of the 8 digits. Strong suite there:
    # clean 11110, l_inf 11010, l_2 11100, l_1 10110, union 10000; theirs: 11110, 01010,
    # 11000, 10110, 00000; both (AND): 11110, 01010, 11000, 10110, 00000.
    radii = {"linf": 0.3, "l2": 2.0, "l1": 10.0}
    theirs = dict(_fake_result("msd", "MSD", (80.0, 40.0, 40.0, 60.0, 0.0)), num_examples=5,
                  radii=radii,
                  eval_split="test[:1000]", robust={"clean": "11110", "linf": "01010",
                                                     "l2": "11000", "l1": "10110",
                                                     "union": "00000"})
    ours = dict(_fake_result("msd", "MSD", (87.5, 50.0, 50.0, 50.0, 25.0)),
                eval_split="test[:1000]", also={".tb19": theirs}, radii=radii,
                robust={"clean": "11110111", "linf": "11010011", "l2": "11100011",
                        "l1": "10110011", "union": "10000011"})
    lines, data = reports.table5(five, {"msd": ours})
    assert "| MSD (ours) | Tramer and Boneh's | 5 | 80.0 | 40.0 | 40.0 | 60.0 | 0.0 |" in lines
    assert "| MSD (ours) | strong suite | 5 | 80.0 | 60.0 | 60.0 | 60.0 | 20.0 |" in lines
    assert "| MSD (ours) | both | 5 | 80.0 | 40.0 | 40.0 | 60.0 | 0.0 |" in lines
    assert "| MSD (paper) | Tramer and Boneh's | - | 98.3 | 75.9 | 67.9 | 74.8 | 65.2 |" in lines
    assert data["rows"]["msd"]["broken_only_by_tb19"] == {"linf": [0], "l2": [2], "l1": [],
                                                          "union": [0]}
    assert any("l_inf 1 (test indices 0); l_2 1 (test indices 2); l_1 0; union 1" in line
               for line in lines)
    # Measured on another training (weights differ): their column alone, and why.
    lines, data = reports.table5(five, {"msd": dict(
        ours, weights_sha256="a" * 64, also={".tb19": dict(theirs, weights_sha256="b" * 64)})})
    assert not any("| strong suite |" in line or "| both |" in line for line in lines)
    assert "strong" not in data["rows"]["msd"] and any("another training" in line
                                                       for line in lines)
    # Other radii, other digits, no flags: never joined digit by digit, and said why.
    for variant, why in ((dict(theirs, radii={**radii, "l1": 12.0}), "other radii"),
                         (dict(theirs, eval_split="test[:500]"), "per-digit flags"),
                         (dict(theirs, num_examples=9), "per-digit flags"),
                         (dict(theirs, robust=None), "per-digit flags")):
        lines, data = reports.table5(five, {"msd": dict(ours, also={".tb19": variant})})
        assert "both" not in data["rows"]["msd"] and any(why in line for line in lines), why


def test_filters_table_counts_thresholding_filters_and_draws_them(tmp_path):
    # Filter 0: one weight (thresholding); filter 1: two equal weights; filter 2: the
    # second weight just below 0.25 x the first (thresholding); filter 3: dense.
    k = np.zeros((5, 5, 1, 4), np.float32)
    k[2, 2, 0, 0] = 1.0
    k[0, 0, 0, 1] = k[4, 4, 0, 1] = -0.5
    k[1, 1, 0, 2], k[3, 1, 0, 2] = 0.8, 0.19
    k[..., 3] = np.linspace(-1, 1, 25).reshape(5, 5, 1)
    bench = tables.BENCHMARKS[("filters", "S")]
    assert tables.FIGURE_DIGITS == 200
    # Every column on the first 200 digits, from the per-digit flags: P_inf keeps 250
    # (clean all robust; l_inf the first 180, l_2 150, l_1 50, union 40), the variant 200.
    def bits(n, total):
        return "1" * n + "0" * (total - n)

    pointwise = dict(_fake_result("linf", "P_inf", (99, 99, 80.0, 30.0, 30.0)),
                     robust={"l1": bits(60, 200)}, num_examples=200, eval_split="test[:1000]")
    results = {"msd_a003": dict(_fake_result("msd_a003", "MSD, alpha_inf 0.03",
                                             (1, 1, 1, 1, 1), alpha=0.03, kernel=k),
                                robust=dict(zip(reports.COLS, (bits(194, 200), bits(100, 200),
                                                               bits(120, 200), bits(110, 200),
                                                               bits(90, 200))))),
               "linf": dict(_fake_result("linf", "P_inf", (99, 90, 10, 4, 3)),
                            robust=dict(zip(reports.COLS, (bits(250, 250), bits(180, 250),
                                                           bits(150, 250), bits(50, 250),
                                                           bits(40, 250)))),
                            eval_split="test[:1000]", also={".pointwise": pointwise})}
    lines, data = reports.filters_report(bench, results)
    assert data["rows"]["msd_a003"]["thresholding"] == 2
    assert "| MSD, alpha_inf 0.03 | 0.03 | 2 of 4 | 97.0 | 50.0 | 60.0 | 55.0 | 45.0 | - | - |" \
        in lines
    assert "| P_inf | 0.1 | - | 100.0 | 90.0 | 75.0 | 25.0 | 20.0 | 80.0 | 30.0 |" in lines
    assert data["rows"]["linf"]["pointwise"] == {"digits": 200, "l2": 80.0, "l1": 30.0,
                                                 "strong_l2": 75.0, "strong_l1": 25.0,
                                                 "split": "test[:1000]", "same_digits": True}
    # A result with fewer flags than the columns' digits: not shown as if it had them.
    short = dict(results["linf"], robust={c: b[:150] for c, b in
                                          results["linf"]["robust"].items()}, also={})
    assert "| P_inf | 0.1 | - | - | - | - | - | - | - | - |" in \
        reports.filters_report(bench, {"linf": short})[0]
    # Pointwise on fewer digits than the columns: said in its cells.
    few = dict(results["linf"], also={".pointwise": dict(pointwise, num_examples=8)})
    assert "| 80.0 (other digits: first 8 of test[:1000]) |" in reports.filters_report(
        bench, {"linf": few})[0][-1]
    # Pointwise measured on another training of the recipe (e.g. retrained on another
    # CPU since): not shown beside this model's strong-suite numbers.
    retrained = dict(results["linf"], weights_sha256="a" * 64,
                     also={".pointwise": dict(pointwise, weights_sha256="b" * 64)})
    lines, data = reports.filters_report(bench, {"linf": retrained})
    assert "| P_inf | 0.1 | - | 100.0 | 90.0 | 75.0 | 25.0 | 20.0 | - | - |" in lines
    assert any(line.startswith("Pointwise result of another training") for line in lines)
    assert units.same_model(retrained, dict(retrained, weights_sha256="a" * 64))
    k2 = k.copy()
    k2[0, 0, 0, 0] += 0.5
    assert not units.same_model(  # without recorded weights: the first layers
        _fake_result("a", "a", (0,) * 5, kernel=k), _fake_result("a", "a", (0,) * 5, kernel=k2))
    other_split = dict(results["linf"], eval_split="test[:500]")  # not the same digits
    lines, data = reports.filters_report(bench, {"linf": other_split})
    assert data["rows"]["linf"]["pointwise"] == {
        "digits": 200, "l2": 80.0, "l1": 30.0, "strong_l2": None, "strong_l1": None,
        "split": "test[:1000]", "same_digits": False}
    assert "| 80.0 (other digits: first 200 of test[:1000]) |" in lines[-1]

    def recorded(r):  # the provenance fields a committed result has
        return dict(r, suite=["pgd_linf"], seconds={}, train_split="train",
                    eval_split="test[:1000]", num_examples=r.get("num_examples", 1000),
                    precision="float32", machine="m", git_commit="c", date="d")

    paths = reports.write(bench, {n: dict(recorded(r), also={t: recorded(o) for t, o in
                                                             r.get("also", {}).items()})
                                  for n, r in results.items()}, str(tmp_path))
    with open(paths["md"]) as f:
        text = f.read()
    assert "(results `<model>.pointwise.json`):" in text
    assert "| P_inf | train | test[:1000], first 200 |" in text  # the Pointwise run's row
    assert "Not measured yet: P_2, " in text and "MSD, alpha_inf 0.03 (pointwise)" in text
    assert os.path.exists(tmp_path / "filters" / "S" / "msd_a003.png")
    assert "linf" not in paths and (tmp_path / "filters_S.md").exists()
    with open(paths["json"]) as f:  # the table's JSON keeps no per-digit flags
        assert "robust" not in json.load(f)["results"]["linf"]["also"][".pointwise"]


def test_a_further_evaluation_warns_when_the_model_is_not_the_main_results(
        tmp_path, monkeypatch, capsys):
    # Table 5 retrains MSD when its run folder is gone: on another CPU the weights differ
    # from those Table 3's result measured, and the hours of evaluation must say so first.
    unit = tables.BENCHMARKS[("5", "S")].units[0]
    ctx = units.Context("S", tables.TB19[1], None, str(tmp_path / "r"), str(tmp_path / "w"),
                        tag=".tb19")
    kernel = [[[[0.5, 0.1]]]]
    main = {"first_layer": {"kernel": kernel}}
    monkeypatch.setattr(units, "train", lambda *a: 0.0)
    monkeypatch.setattr(units, "evaluate", lambda *a: 0.0)
    monkeypatch.setattr(units, "collect", lambda *a: {"accuracy": {"union": 1.0}})
    description = {"_train_key": "t" * 64, "format": 1}
    for on_disk, warned in ((kernel, False), ([[[[0.5, 0.2]]]], True)):
        monkeypatch.setattr(units, "first_layer", lambda path, k=on_disk: {"kernel": k})
        tables._measure(unit, ctx, "k", description, None, None, main)
        assert ("warning: MSD's model on disk is not the one its main result measured"
                in capsys.readouterr().out) == warned


def test_a_units_digits_cap_every_evaluation_of_it(tmp_path, mnist_dir, capsys):
    # The figures' variants: the strong suite and Pointwise on the first 200 digits; Table
    # 3's models keep their 1000 (and their committed results' keys).
    bench = tables.BENCHMARKS[("filters", "S")]
    variant, table3 = bench.units[-1], next(u for u in bench.units if u.name == "msd")
    assert variant.digits == tables.FIGURE_DIGITS and table3.digits is None
    ctx = units.Context("S", bench.evaluation, str(mnist_dir.resolve()), str(tmp_path / "r"),
                        str(tmp_path / "w"), dry_run=True)
    assert units.evaluation_of(table3, ctx) == bench.evaluation
    with open(os.path.join(REPO, "docs", "results", "S", "msd.json")) as f:
        assert units.key_of(units.describe(table3, ctx)) == json.load(f)["key"]
    assert units.evaluation_of(variant, ctx) == (*bench.evaluation, "--num_examples=200")
    pointwise = dataclasses.replace(ctx, evaluation=tables.POINTWISE[1])
    assert units.evaluation_of(variant, pointwise) == tables.POINTWISE[1]  # 200 already
    capped = units.describe(variant, ctx)
    assert capped["num_examples"] == 200 and capped["eval_split"] == "test[:1000]"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        tables.produce(bench, ctx, [variant.name])
    finally:
        os.chdir(cwd)
    [command] = [line for line in capsys.readouterr().out.splitlines()
                 if "msd_tf.evaluate" in line]
    assert command.split().count("--num_examples=200") == 1


def test_a_fine_tunings_run_folder_follows_its_parents_training_not_its_evaluation(
        tmp_path, mnist_dir, capsys):
    # Another evaluation (or EVALUATION_VERSION) re-evaluates, it does not retrain: the
    # fine-tuning's training key holds its parent's training key, not the parent's result key.
    bench = tables.BENCHMARKS[("union", "smoke")]
    folders = []
    for evaluation in (bench.evaluation, (*bench.evaluation, "--num_examples=7")):
        ctx = units.Context("smoke", evaluation, None, str(tmp_path / "r"),
                            str(tmp_path / "w"), dry_run=True)
        tables.produce(dataclasses.replace(bench, evaluation=evaluation), ctx,
                       ["finetune_eat"])
        out = capsys.readouterr().out
        folders.append(sorted(set(re.findall(r"--output_dir=(\S*finetune_eat-\w+)\b", out))))
    assert len(folders[0]) == 1 and folders[0] == folders[1]


def test_a_further_evaluation_joins_each_units_result(tmp_path, mnist_dir):
    # The filters' Pointwise evaluation is its own per-model result of the same trained
    # model (<name>.pointwise.json, its own key): produce_all joins it under "also".
    smoke = dataclasses.replace(tables.BENCHMARKS[("3", "smoke")],
                                also=((".pw", ("--flagfile=flags/mnist/eval_pointwise.cfg",)),))
    ctx = units.Context("smoke", smoke.evaluation, None, str(tmp_path / "r"),
                        str(tmp_path / "w"))
    msd, linf = smoke.units
    pw_ctx = dataclasses.replace(ctx, evaluation=smoke.also[0][1], tag=".pw")
    described = {c.tag: units.describe(msd, c) for c in (ctx, pw_ctx)}
    keys = {tag: units.key_of(d) for tag, d in described.items()}
    assert keys[""] != keys[".pw"]  # its own result, in its own evaluation folder ...
    assert (units.eval_dir(msd, ctx, described[""])
            != units.eval_dir(msd, pw_ctx, described[".pw"]))
    # ... of the same trained model
    assert (units.run_dir(msd, ctx, described[""])
            == units.run_dir(msd, pw_ctx, described[".pw"]))
    for c, acc in ((ctx, 5.0), (pw_ctx, 30.0)):
        units.save_result(dict(_fake_result("msd", "msd", (90, 0, 0, 0, acc)), key=keys[c.tag]),
                          units.result_path(msd, c))
    units.save_result(dict(_fake_result("linf", "linf", (90, 0, 0, 0, 1.0)),
                           key=units.key_of(units.describe(linf, pw_ctx))),
                      units.result_path(linf, pw_ctx))  # its main result is missing
    results = tables.produce_all(smoke, ctx, committed_only=True)
    assert list(results) == ["msd"] and results["msd"]["accuracy"]["union"] == 5.0
    assert results["msd"]["also"][".pw"]["accuracy"]["union"] == 30.0
    assert sorted(os.listdir(tmp_path / "r")) == ["linf.pw.json", "msd.json", "msd.pw.json"]


def test_paper_scale_report_puts_ours_beside_the_papers_table_3(tmp_path):
    """`reproduce --scale=paper` (GPU hours) ends in `reproduction.write`: checked on an
    evaluation's results.json with hand-set numbers against the paper's Table 3 row."""
    from msd_tf.benchmarks import reproduction

    norms = {n: {"eps": eps, "acc": acc, "attacks": {}}
             for n, eps, acc in (("linf", 0.3, 0.6), ("l2", 2.0, 0.7), ("l1", 10.0, 0.65))}
    model = {"n": 4, "clean": 0.97, "all": 0.55, "norms": norms,
             "paper_only": {"linf": 0.61, "l2": 0.72, "l1": 0.7, "all": 0.6},
             "broken_only_by_added": {"linf": 0.01, "l2": 0.02, "l1": 0.05, "all": 0.05}}
    provenance = {"num_examples": 4, "split": "test[:4]", "dataset": "mnist",
                  "git_commit": "abc", "versions": {"tensorflow": "2.x"}}
    os.makedirs(tmp_path / "eval")
    (tmp_path / "eval" / "results.json").write_text(json.dumps(
        {"models": {"msd": model}, "provenance": provenance, "suite": [{"name": "pgd_linf"}]}))
    paths = reproduction.write(str(tmp_path), table=3, scale="paper", note="a note",
                               models=["msd"], timings={"train/msd": 120.0, "eval": 60.0})
    md = open(paths["md"]).read()
    # Paper's MSD: 98.3, 62.7, 67.9, 65.0, 58.4 (PAPER_NOTES, Table 3).
    assert ("| MSD | 97.0 (98.3, -1.3) | 60.0 (62.7, -2.7) | 70.0 (67.9, +2.1) | "
            "65.0 (65.0, +0.0) | 55.0 (58.4, -3.4) |") in md
    assert "| MSD | 61.0 / 60.0 / 1.0 | 72.0 / 70.0 / 2.0 | 70.0 / 65.0 / 5.0 | " in md
    assert "| total | 3.0 |" in md and os.path.exists(paths["png"])
    saved = json.load(open(paths["json"]))
    assert saved["rows"]["msd"]["diff"] == {"clean": -1.3, "linf": -2.7, "l2": 2.1,
                                            "l1": 0.0, "all": -3.4}


def test_the_compute_figure_draws_the_union_tables_rows_and_nothing_without_them(tmp_path):
    png = tmp_path / "union_compute.png"
    png.write_bytes(b"an earlier figure")
    assert reports.plot_union(str(tmp_path), str(png)) == {} and not png.exists()
    # A result file the tables did not find current (stale) is not a point: only the
    # rows the table command wrote are.
    (tmp_path / "S").mkdir()
    stale = {"name": "msd", "label": "MSD", "compute": {"total_passes": 2.8e6},
             "accuracy": {"union": 39.1}}
    (tmp_path / "S" / "msd.json").write_text(json.dumps(stale))

    def row(label, passes, union):
        return {"label": label, "total_passes": passes, "ours": {"union": union}}

    (tmp_path / "union_S.json").write_text(json.dumps({"rows": {
        "eat": row("E-AT", 2.75e6, 43.4), "linf_pretrain": row("P_inf", 1.0e6, 3.0)}}))
    (tmp_path / "union_M.json").write_text(json.dumps({"rows": {
        "eat": row("E-AT", 30.0e6, 55.1)}}))
    assert reports.plot_union(str(tmp_path), str(png)) == {"E-AT": [(2.75, 43.4),
                                                                   (30.0, 55.1)]}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
