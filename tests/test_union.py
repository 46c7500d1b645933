"""The compute-matched union benchmark (`reproduce --table=union`): the step costs it plans
with against closed forms of each algorithm, the epoch plan by hand, and the whole command at
a toy scale (its table against the evaluation's results.json and each run's summary.json)."""

import json
import os
import subprocess
import sys

import pytest

from msd_tf import experiment, union
from msd_tf.config import TrainConfig
from msd_tf.threats import ThreatModel
from tests.conftest import REPO

K, R1 = 3, 2  # attack iterations per norm, l_1 PGD runs
THREATS = (ThreatModel("linf", 0.3, 0.1, K), ThreatModel("l2", 2.0, 0.5, K),
           ThreatModel("l1", 10.0, 2.0, K, restarts=R1))


def _pgd(restarts):
    """A PGD run: K gradients (forward + backward), its end point's loss (a forward);
    (forward, backward) per example."""
    return restarts * (K + 1), restarts * K


# Per example and step, derived from each algorithm (not from our code): the weight update
# is a forward and a backward of what the model trains on, the clean accuracy one forward.
CLOSED_FORM = {
    "none": (1, 1),  # the update's forward is the clean one
    "linf": (_pgd(1)[0] + 2, _pgd(1)[1] + 1),
    "l1": (_pgd(R1)[0] + 2, _pgd(R1)[1] + 1),
    # MSD: per iteration a gradient and one forward of the three candidate steps (3B).
    "msd": (K * (1 + 3) + 2, K + 1),
    # MAX: three PGDs, the worst picked by their end points' losses.
    "max": (sum(_pgd(r)[0] for r in (1, 1, R1)) + 2,
            sum(_pgd(r)[1] for r in (1, 1, R1)) + 1),
    # AVG: three PGDs, the update on all three results (3B).
    "avg": (sum(_pgd(r)[0] for r in (1, 1, R1)) + 3 + 1,
            sum(_pgd(r)[1] for r in (1, 1, R1)) + 3),
    # E-AT: one norm's PGD per batch; planned as the mean over the norms.
    "eat": ((2 * (_pgd(1)[0] + 2) + _pgd(R1)[0] + 2) / 3,
            (2 * (_pgd(1)[1] + 1) + _pgd(R1)[1] + 1) / 3),
    # RAMP: two APGDs (K steps: K + 1 gradients, the last point's included), the update on
    # the worse of the two and the KL term's forwards of both (3B).
    "ramp": (2 * (K + 1) + 3 + 1, 2 * (K + 1) + 3),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_step_cost_is_the_closed_form(name):
    cost = experiment.step_cost(TrainConfig(adversary=name, threats=THREATS, msd_steps=K))
    want = CLOSED_FORM[name]
    assert (cost["forward"], cost["backward"]) == pytest.approx(want)
    assert cost["passes"] == pytest.approx(sum(want))


# --train_attack=apgd: one APGD run per norm (K steps: K + 1 gradients; no restarts).
APGD_CLOSED_FORM = {
    "linf": (K + 1 + 2, K + 1 + 1),
    "eat": (K + 1 + 2, K + 1 + 1),  # the same for every norm
    "max": (3 * (K + 1) + 2, 3 * (K + 1) + 1),
    "avg": (3 * (K + 1) + 3 + 1, 3 * (K + 1) + 3),
}


@pytest.mark.parametrize("name", sorted(APGD_CLOSED_FORM))
def test_step_cost_with_apgd_is_the_closed_form(name):
    cost = experiment.step_cost(TrainConfig(adversary=name, threats=THREATS,
                                            train_attack="apgd"))
    assert (cost["forward"], cost["backward"]) == pytest.approx(APGD_CLOSED_FORM[name])


def test_ramp_projection_adds_the_natural_copy_step():
    config = TrainConfig(adversary="ramp", threats=THREATS, msd_steps=K, ramp_projection=0.5)
    cost = experiment.step_cost(config)
    fwd, bwd = CLOSED_FORM["ramp"]
    assert (cost["forward"], cost["backward"]) == (fwd + 1, bwd + 1)


def test_plan_gives_every_method_the_reference_budget():
    methods = [union.Method("msd", "MSD", ()), union.Method("eat", "E-AT", ()),
               union.Method("linf", "P_inf", (), share=2 / 3),
               union.Method("ft", "FT", (), share=1 / 3, warmup=1 / 3, init_from="linf")]
    costs = {"msd": {"epochs": 6, "passes": 53}, "eat": {"epochs": 1, "passes": 24},
             "linf": {"epochs": 1, "passes": 24}, "ft": {"epochs": 1, "passes": 51}}
    plan = union.plan_epochs(costs, methods)
    # budget 6 x 53 = 318: E-AT 318 / 24 = 13.25 -> 13; P_inf 212 / 24 = 8.8 -> 9;
    # the fine-tuning 106 / 51 = 2.08 -> 2.
    assert plan["budget_passes_per_example"] == 318
    assert [plan[m]["epochs"] for m in ("msd", "eat", "linf", "ft")] == [6, 13, 9, 2]
    assert plan["eat"]["lr_epochs"] == [0.0, 5.2, 13.0]
    assert plan["ft"]["lr_epochs"] == [0.0, 0.667, 2.0]
    assert plan["eat"]["planned_passes_per_example"] == 13 * 24
    # warmup None: the recipe's own knots, scaled to the planned epochs.
    own = union.plan_epochs({**costs, "eat": {"epochs": 50, "lr_epochs": [0, 20, 40, 50],
                                              "passes": 24}},
                            [methods[0], union.Method("eat", "E-AT", (), warmup=None)])
    assert own["eat"]["lr_epochs"] == [0.0, 5.2, 10.4, 13.0]
    # A budget given as a number (the small scale's BUDGETS) ignores the reference's own
    # recipe: a 5-iteration MSD (28 passes a step) gets round(318 / 28) = 11 epochs.
    fixed = union.plan_epochs({**costs, "msd": {"epochs": 6, "passes": 28}}, methods,
                              budget=318)
    assert fixed["budget_passes_per_example"] == 318
    assert [fixed[m]["epochs"] for m in ("msd", "eat", "linf", "ft")] == [11, 13, 9, 2]
    assert fixed["msd"]["lr_epochs"] == [0.0, 4.4, 11.0]
    flags = union.train_flags(methods[3], plan, "out")
    assert flags[-3:] == ["--epochs=2", "--lr_epochs=0,0.667,2",
                          f"--init_from={os.path.join('out', 'linf', 'saved_model')}"]


def test_recipe_key_follows_flagfile_content(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # flagfile paths are relative to the working folder
    (tmp_path / "base.cfg").write_text("# comment\n--batch_size=50\n")
    (tmp_path / "m.cfg").write_text("--flagfile=base.cfg\n--adversary=msd\n")
    (tmp_path / "other.cfg").write_text("--epochs=3\n")
    recipe = ["--flagfile=m.cfg", "--data_dir=d"]
    key = union.recipe_key(recipe)
    assert union.recipe_key(recipe) == key
    (tmp_path / "other.cfg").write_text("--epochs=4\n")  # not named by the recipe
    assert union.recipe_key(recipe) == key
    (tmp_path / "base.cfg").write_text("# another comment\n--batch_size=50\n")
    assert union.recipe_key(recipe) == key  # comments are not flags
    (tmp_path / "base.cfg").write_text("--batch_size=100\n")  # a nested file changed
    changed = union.recipe_key(recipe)
    assert changed != key
    assert union.recipe_key(recipe + ["--seed=1"]) != changed
    (tmp_path / "base.cfg").unlink()
    assert union.recipe_key(recipe) not in (key, changed)
    # A shipped flagfile keys by its content from any folder, as the commands find it.
    shipped = ["--flagfile=flags/mnist/small/msd.cfg"]
    outside = union.recipe_key(shipped)
    monkeypatch.chdir(REPO)
    assert union.recipe_key(shipped) == outside
    assert outside != union.recipe_key(["--flagfile=flags/mnist/small/no_such.cfg"])


def _bench(out, data_dir, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "msd_tf.reproduce", "--table=union",
                           "--scale=smoke", f"--data_dir={data_dir}", f"--output_dir={out}",
                           *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def test_toy_union_benchmark_table_matches_its_sources(tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / "u"
    res = _bench(out, mnist_dir)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    results = json.loads((out / "eval" / "results.json").read_text())
    table = json.loads((out / "union.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    names = [m.name for m in union.METHODS["smoke"]]
    assert list(table["rows"]) == names and table["n"] == 8
    compute = {m: json.loads((out / m / "summary.json").read_text())["compute"]
               for m in names}
    history_epochs = {m: len((out / m / "history.csv").read_text().strip().splitlines()) - 1
                      for m in names}
    # The budget: passes per example x the examples of an epoch (smoke: 1 step of 50),
    # which is what the reference MSD (no attack of it stops early) counted.
    assert all(compute[m]["examples_per_epoch"] == 50 for m in names)
    budget = plan["budget_passes_per_example"] * 50
    assert table["budget_passes"] == budget == compute["msd"]["passes"]
    for m in union.METHODS["smoke"]:
        s, row = results["models"][m.name], table["rows"][m.name]
        assert row["clean"] == round(100 * s["clean"], 1)
        assert row["all"] == round(100 * s["all"], 1)
        for n in ("linf", "l2", "l1"):
            assert row[n] == round(100 * s["norms"][n]["acc"], 1)
        # The run trained the planned epochs and the table holds what it counted.
        assert row["epochs"] == plan[m.name]["epochs"] == history_epochs[m.name]
        total = compute[m.name]["passes"] + (compute[m.init_from]["passes"]
                                             if m.init_from else 0)
        assert row["passes"] == compute[m.name]["passes"] and row["total_passes"] == total
        assert row["of_budget"] == round(total / budget, 3)
    md = (out / "union.md").read_text()
    eat = table["rows"]["eat"]
    assert (f"| E-AT | {eat['clean']:.1f} | {eat['linf']:.1f} | {eat['l2']:.1f} | "
            f"{eat['l1']:.1f} | {eat['all']:.1f} | {eat['epochs']} |") in md
    assert (out / "union.png").stat().st_size > 0
    # The fine-tuning started from the plan's P_inf model.
    ft = json.loads((out / "finetune_ramp" / "config.json").read_text())
    assert ft["init_from"] == str(out / "linf" / "saved_model")

    # Started again: nothing trained or evaluated again, the same table.
    cache = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    res = _bench(out, mnist_dir)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "is up to date" in (out / "logs" / "eat.log").read_text()
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} == cache
    # (wall seconds accumulate over resumptions; every number measured stays)
    def measured(rows):
        return {m: {k: v for k, v in r.items() if k != "train_seconds"}
                for m, r in rows.items()}
    assert measured(json.loads((out / "union.json").read_text())["rows"]) == measured(
        table["rows"])

    # A subset (--models) reuses the whole benchmark's plan and runs.
    res = _bench(out, mnist_dir, "--models=msd")
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((out / "plan.json").read_text()) == plan
    assert measured(json.loads((out / "union.json").read_text())["rows"]) == {
        "msd": measured(table["rows"])["msd"]}

    # The recipe search (scripts/tune_union.py) on other digits, at the planned budget: a
    # variant with fewer attack iterations gets its epochs re-planned from its own step cost.
    res = subprocess.run([sys.executable, "scripts/tune_union.py", "--scale=smoke",
                          f"--bench={out}", "--method=eat", "--variant=s1=--seed=1",
                          "--variant=k1=--linf_steps=1 --l2_steps=1 --l1_steps=1",
                          "--num_examples=8", "--attacks=apgd_ce_linf,apgd_ce_l1",
                          "--tune_split=test[100:200]", f"--output_dir={tmp_path / 'tune'}"],
                         cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    tuned = json.loads((tmp_path / "tune" / "eat" / "eval" / "results.json").read_text())
    assert tuned["provenance"]["split"] == "test[100:200]"
    md = (tmp_path / "tune" / "eat" / "tune.md").read_text()
    base_run = json.loads((out / "eat" / "config.json").read_text())
    r1 = next(t["restarts"] for t in base_run["threats"] if t["norm"] == "l1")
    # E-AT's 1-iteration step by the closed form (a norm's PGD: 2 forwards, 1 backward per
    # run; the update 2 + 1), the mean over its three norms.
    k1_cost = (2 * (2 + 2 + 1 + 1) + (2 * r1 + 2 + r1 + 1)) / 3
    want = {"base": plan["eat"]["epochs"], "s1": plan["eat"]["epochs"],
            "k1": max(1, round(plan["budget_passes_per_example"] / k1_cost))}
    assert want["k1"] != want["base"]
    for name, flags in (("base", "-"), ("s1", "--seed=1"),
                        ("k1", "--linf_steps=1 --l2_steps=1 --l1_steps=1")):
        s = tuned["models"][name]
        assert (f"| {name} | {flags} | {want[name]} | {100 * s['clean']:.1f} | "
                f"{100 * s['norms']['linf']['acc']:.1f} | - |") in md
        run = json.loads((tmp_path / "tune" / "eat" / name / "config.json").read_text())
        assert run["epochs"] == want[name]
        assert len((tmp_path / "tune" / "eat" / name / "history.csv").read_text()
                   .strip().splitlines()) - 1 == want[name]

    # A plan made for other recipes is not reused for these: other flags, or a flagfile
    # whose content changed since (its key differs).
    monkeypatch.chdir(REPO)  # where the benchmark read its flagfiles
    assert plan["recipe_keys"]["eat"] == union.recipe_key(plan["recipes"]["eat"])
    for name, edit in (("eat", lambda p: p["recipes"]["eat"].append("--linf_steps=7")),
                       ("msd", lambda p: p["recipe_keys"].update(msd="0" * 64))):
        stale = json.loads(json.dumps(plan))
        edit(stale)
        (out / "plan.json").write_text(json.dumps(stale))
        res = _bench(out, mnist_dir)
        assert res.returncode == 2 and "planned for other recipes" in res.stderr
        assert f"['{name}']" in res.stderr and "Traceback" not in res.stderr
    # ... nor by the recipe search (the plan is the stale-key one of msd, the last above).
    res = subprocess.run([sys.executable, "scripts/tune_union.py", "--scale=smoke",
                          f"--bench={out}", "--method=msd", f"--output_dir={tmp_path / 't2'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "another content of the msd recipe" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "t2" / "msd" / "base").exists()


@pytest.mark.parametrize("args, message", [
    (["--models=msd,foo"], "unknown --models ['foo']"),
    (["--data_dir=/no/such/dir"], "--data_dir /no/such/dir"),
])
def test_bad_input_gives_one_error_line(tmp_path, mnist_dir, args, message):
    res = _bench(tmp_path, mnist_dir, *args)  # the last --data_dir wins
    assert res.returncode == 2 and message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr
