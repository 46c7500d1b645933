"""The compute-matched union benchmark's planning (`reproduce --table=union`): the step
costs it plans with against closed forms of each algorithm, and the epoch plan by hand.
The benchmark end to end: tests/test_benchmarks.py."""

import os

import pytest

from msd_tf.benchmarks import budgets
from msd_tf.benchmarks import union_plan as union
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
    cost = budgets.step_cost(TrainConfig(adversary=name, threats=THREATS, msd_steps=K))
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
    cost = budgets.step_cost(TrainConfig(adversary=name, threats=THREATS,
                                            train_attack="apgd"))
    assert (cost["forward"], cost["backward"]) == pytest.approx(APGD_CLOSED_FORM[name])


def test_ramp_projection_adds_the_natural_copy_step():
    config = TrainConfig(adversary="ramp", threats=THREATS, msd_steps=K,
                         adversary_options=dict(projection=0.5))
    cost = budgets.step_cost(config)
    fwd, bwd = CLOSED_FORM["ramp"]
    assert (cost["forward"], cost["backward"]) == (fwd + 1, bwd + 1)


def test_step_cost_is_measured_once_per_adversary_not_per_recipe(monkeypatch):
    import dataclasses

    measured = []
    real = budgets._measure_step
    monkeypatch.setattr(budgets, "_COSTS", {})
    monkeypatch.setattr(budgets, "_measure_step", lambda c: measured.append(c) or real(c))
    msd = TrainConfig(adversary="msd", threats=THREATS, msd_steps=K)
    # Another schedule, seed and data: the same adversary, measured once.
    other = dataclasses.replace(msd, epochs=3, lr_values=(0.0, 5e-4, 0.0), seed=7,
                                train_split="train[:100]", batch_size=50)
    assert budgets.step_cost(other) == budgets.step_cost(msd) == pytest.approx(
        dict(zip(("forward", "backward", "passes"), (*CLOSED_FORM["msd"],
                                                     sum(CLOSED_FORM["msd"])))))
    assert len(measured) == 1
    # Another adversary setting is measured: one MSD iteration more.
    more = budgets.step_cost(dataclasses.replace(msd, msd_steps=K + 1))
    assert len(measured) == 2 and more["backward"] == CLOSED_FORM["msd"][1] + 1
    ramp = dataclasses.replace(msd, adversary="ramp")
    assert budgets.step_cost(dataclasses.replace(ramp, adversary_options=dict(
        projection=0.5)))["passes"] == budgets.step_cost(ramp)["passes"] + 2
    assert len(measured) == 4
    # The key is what the adversary is built from: every argument make_adversary names.
    import inspect

    from msd_tf.adversaries import make_adversary

    params = inspect.signature(make_adversary).parameters.values()
    named = {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert named <= set(msd.adversary_settings()), named - set(msd.adversary_settings())


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
    # A budget given as a number ignores the reference's own
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
    shipped = ["--flagfile=flags/mnist/S/msd.cfg"]
    outside = union.recipe_key(shipped)
    monkeypatch.chdir(REPO)
    assert union.recipe_key(shipped) == outside
    assert outside != union.recipe_key(["--flagfile=flags/mnist/S/no_such.cfg"])
