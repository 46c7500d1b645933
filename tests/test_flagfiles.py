"""Every flagfile parses, passes the validators and yields a valid TrainConfig."""

import dataclasses
import pathlib

import numpy as np
import pytest
from absl import flags

from msd_tf import flags as msd_flags
from msd_tf import threats

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALL_FILES = sorted((ROOT / "flags").rglob("*.cfg"))
EVAL_FILES = [p for p in ALL_FILES if "eval" in p.name]
TRAIN_FILES = [p for p in ALL_FILES if "eval" not in p.name]
# Training radii chosen by the first CPU-scale recipe search (an l_1 training radius of 18
# for an evaluation at 10), not the paper's; the evaluation radii stay the paper's.
SEARCHED_RADII = {"flags/mnist/S/msd.cfg": {"l1": 18.0},
                  "flags/mnist/S/msd_linf_l1.cfg": {"l1": 18.0},
                  "flags/mnist/S/eat.cfg": {"l1": 18.0},
                  "flags/mnist/S/ramp.cfg": {"l1": 18.0},
                  "flags/mnist/S/finetune_eat.cfg": {"l1": 18.0},
                  "flags/mnist/S/finetune_ramp.cfg": {"l1": 18.0},
                  "flags/mnist/M/msd.cfg": {"l1": 18.0},
                  "flags/mnist/M/eat.cfg": {"l1": 18.0},
                  "flags/mnist/M/ramp.cfg": {"l1": 18.0}}


def _parse(argv):
    return msd_flags.parse_config(argv)


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)  # flagfile paths are repo-root relative
    yield
    flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("path", TRAIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_flagfile_gives_valid_config(path):
    text = path.read_text()
    assert text.startswith("#"), "a flagfile opens with comments saying what it reproduces"
    assert len(text.splitlines()) <= 30
    config = _parse([f"--flagfile={path.relative_to(ROOT)}"])
    assert config.output_dir.startswith("runs/") or "smoke" in path.name


def test_paper_settings_reach_the_config():
    msd = _parse(["--flagfile=flags/mnist/msd.cfg"])
    assert (msd.adversary, msd.msd_steps, msd.epochs) == ("msd", 100, 15)
    assert [(t.norm, t.eps, t.alpha) for t in msd.threats] == [
        ("linf", 0.3, 0.01), ("l2", 2.0, 0.1), ("l1", 10.0, 0.8)]
    mx = _parse(["--flagfile=flags/cifar10/max.cfg"])
    assert mx.epochs == 45 and mx.lr_epochs == (0, 20, 40, 50) and mx.weight_decay == 5e-4
    assert [(t.eps, t.alpha, t.steps) for t in mx.threats] == [
        (0.03, 0.005, 40), (0.3, 0.05, 50), (12.0, 1.0, 50)]
    cm = _parse(["--flagfile=flags/cifar10/msd.cfg"])
    assert cm.threats[1].eps == 0.5  # the paper's MSD eps_2, not the reference code's 0.3
    tb = _parse(["--flagfile=flags/tb19/cifar10_msd_wrn.cfg"])
    assert [t.norm for t in tb.threats] == ["linf", "l1"] and tb.model == "wide_resnet"


@pytest.mark.parametrize("dataset, adversary", sorted(threats.PAPER_TRAIN))
def test_paper_flagfile_trains_what_threats_says(dataset, adversary):
    """flags/<dataset>/<adversary>.cfg and threats.PAPER_TRAIN are one fact written twice:
    a change to either alone fails here."""
    c = _parse([f"--flagfile=flags/{dataset}/{adversary}.cfg"])
    want = threats.PAPER_TRAIN[(dataset, adversary)]
    assert [t.norm for t in c.threats] == list(want)
    for t in c.threats:
        alpha, eps, steps = want[t.norm]
        assert (t.alpha, t.eps) == (alpha, eps), t.norm
        assert (c.msd_steps if adversary == "msd" else t.steps) == steps, t.norm
    # What scripts/bench.py and the device check time is what the flagfile trains.
    assert [(t.norm, t.eps, t.alpha) for t in threats.paper_training(dataset, adversary)] == \
        [(t.norm, t.eps, t.alpha) for t in c.threats]


@pytest.mark.parametrize("path", sorted((ROOT / "flags" / "mnist").rglob("*.cfg")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_mnist_flagfiles_train_at_the_paper_radii(path):
    """Every MNIST training flagfile (paper, small scale, fine-tuning) attacks at the
    paper's radii: threats.radii, or PAPER_TRAIN's where the paper trains elsewhere
    (MAX and AVG at l_1 = 12), except the departures the recipe search chose,
    listed here so that no other slips in."""
    if "eval" in path.name:
        return
    c = _parse([f"--flagfile={path.relative_to(ROOT)}"])
    radii = dict(threats.radii("mnist"))
    for norm, (_, eps, _) in threats.PAPER_TRAIN.get(("mnist", c.adversary), {}).items():
        radii[norm] = eps
    radii.update(SEARCHED_RADII.get(path.relative_to(ROOT).as_posix(), {}))
    assert {t.norm: t.eps for t in c.threats} == {t.norm: radii[t.norm] for t in c.threats}


def test_command_line_overrides_flagfile():
    c = _parse(["--flagfile=flags/mnist/msd.cfg", "--msd_steps=7", "--epochs=2"])
    assert (c.msd_steps, c.epochs) == (7, 2)


@pytest.mark.parametrize("argv, message", [
    (["--l1_eps=-1"], "l1_eps"), (["--linf_alpha=0"], "linf_alpha"),
    (["--l1_k1=9", "--l1_k2=3"], "l1_k1"), (["--adversary=pgd"], "adversary"),
    (["--dataset=svhn"], "dataset"), (["--no_such_flag=1"], "no_such_flag"),
    (["flags/mnist/S/msd.cfg"], "unexpected arguments"),
])
def test_bad_flags_fail_before_training(argv, message):
    with pytest.raises(ValueError, match=message):
        _parse(argv)


def test_a_recipe_parses_without_touching_the_process_flags():
    # Library callers (the benchmarks) read many recipes in one process: each into a
    # fresh FlagValues; the process's own flags stay undefined.
    a = _parse(["--flagfile=flags/mnist/S/msd.cfg"])
    b = _parse(["--flagfile=flags/mnist/S/eat.cfg", "--epochs=3"])
    assert (a.adversary, b.adversary, b.epochs) == ("msd", "eat", 3)
    assert _parse([]).adversary == "msd" and "msd_steps" not in flags.FLAGS


def test_cross_field_rules_name_the_field():
    from msd_tf.adversaries import make_adversary

    # Names are checked where the objects are built (experiment.train builds them all
    # before it writes anything).
    c = _parse(["--adversary=l2", "--norms=linf"])
    with pytest.raises(ValueError, match="needs an l2 ThreatModel"):
        make_adversary(c.adversary, c.threats)
    with pytest.raises(ValueError, match="--norms"):
        _parse(["--norms=linf,l3"])
    with pytest.raises(ValueError, match="`lr_epochs`"):
        _parse(["--lr_epochs=0,6,3"])


@pytest.mark.parametrize("path", EVAL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_evaluation_flagfile_builds_its_suite(path):
    from msd_tf import evaluate  # noqa: F401 - defines the evaluation flags
    from msd_tf.evaluation import pipeline

    text = path.read_text()
    assert text.startswith("#") and len(text.splitlines()) <= 30
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["evaluate", f"--flagfile={path.relative_to(ROOT)}", "--models=x"])
    f = flags.FLAGS
    if f.corruptions != "none":
        assert f.dataset == "cifar10"
        return
    eps = {n: getattr(f, f"eval_{n}_eps") for n in ("linf", "l2", "l1")
           if getattr(f, f"eval_{n}_eps") is not None}
    specs = pipeline.build_suite(f.dataset, f.attacks, restarts=f.restarts,
                                 suite_name=f.suite, budget=f.budget, eps=eps,
                                 only_robust=f.only_robust, curves=f.curves)
    if path.name == "eval_benchmark.cfg":  # the strong suite without the slow attacks
        strong = pipeline.build_suite("mnist", None, restarts=1, suite_name="strong",
                                      budget="paper", eps={})
        slow = {"boundary", "cw_l2", "pointwise_l2", "pointwise_l1"}
        assert [s.name for s in specs] == [s.name for s in strong if s.name not in slow]
        return
    if path.name == "eval_pointwise.cfg":  # the filter table's decision-based column
        assert [(s.name, s.norm, s.eps, s.restarts, s.steps) for s in specs] == [
            ("pointwise_l2", "l2", 2.0, 1, 1000), ("pointwise_l1", "l1", 10.0, 1, 1000)]
        assert (f.eval_split, f.num_examples, f.curves) == ("test[:1000]", 200, False)
        return
    if path.name == "mnist_eval.cfg" and "tb19" in str(path):
        # Table 5: Tramer and Boneh's 8 attacks, one run each, at the MNIST radii.
        from msd_tf.evaluation import suite

        # Their script's 200 digits, the first of the strong suite's split (Table 5 puts
        # both evaluations side by side, digit by digit).
        assert f.suite == "tb19" and f.restarts == 1
        assert (f.eval_split, f.num_examples) == ("test[:1000]", 200)
        # Their 8 attacks, the decision-based ones last in each norm, each after the first
        # of its norm only on what is still robust (the same per-norm flags, less time).
        assert [s.name for s in specs] == [
            "pgd_linf", "hsj_linf", "pgd_l2", "cw_l2", "boundary", "slide", "ead",
            "pointwise_l1"]
        first = {"pgd_linf", "pgd_l2", "slide"}
        theirs = {s.name: s for s in suite.tb19_suite("mnist")}
        assert all(s == dataclasses.replace(theirs[s.name], only_robust=s.name not in first)
                   for s in specs)
        assert not f.curves and [s.restarts for s in specs] == [1] * 8
        assert {s.norm: s.eps for s in specs} == {"linf": 0.3, "l2": 2.0, "l1": 10.0}
        return
    if "tb19" in str(path):  # Table 6: no restarts, the union over l_inf and l_1 only
        assert {s.norm for s in specs} == {"linf", "l1"}
        assert [s.restarts for s in specs] == [1] * 7
        np.testing.assert_allclose([s.eps for s in specs if s.norm == "linf"], 4 / 255)
        np.testing.assert_allclose([s.eps for s in specs if s.norm == "l1"], 2000 / 255)
        return
    # Table 3 and 4: the paper's 15 attacks, its 10 restarts for every randomized one (DDN,
    # DeepFool and C&W are deterministic; Boundary draws 25 trials per iteration instead).
    assert len(specs) == 15
    once = {"boundary", "deepfool", "ddn", "cw_l2"}
    assert {s.restarts for s in specs if s.name not in once} == {10}


def _header_commands(path):
    """The `python -m msd_tf.evaluate ...` commands quoted in a flagfile's header."""
    commands, current = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if current is not None:
            current += " " + text.rstrip("\\").strip()
            if not text.endswith("\\"):
                commands.append(current.split())
                current = None
        elif text.startswith("python -m msd_tf.evaluate"):
            current = text.rstrip("\\").strip()
            if not text.endswith("\\"):
                commands.append(current.split())
                current = None
    return commands


@pytest.mark.parametrize("name", ["quickstart_offline.cfg", "mnist/eval.cfg"])
def test_offline_evaluation_commands_in_headers_run_as_written(name, tmp_path, mnist_dir):
    # The command as quoted, with only the model replaced by a tiny one and the attack
    # budget cut: its data flags must work offline.
    import subprocess
    import sys

    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn

    [command] = [c for c in _header_commands(ROOT / "flags" / name)
                 if any(a.startswith("--data_dir=") for a in c)]
    assert command[:3] == ["python", "-m", "msd_tf.evaluate"]
    model = export_saved_model(small_cnn(seed=0), str(tmp_path / "m" / "saved_model"))
    args = [a for a in command[3:] if not a.startswith(("--models=", "--output_dir="))]
    assert any(a.startswith("--models=") for a in command), "the command names its models"
    res = subprocess.run(
        [sys.executable, "-m", "msd_tf.evaluate", *args, f"--models={model}",
         f"--output_dir={tmp_path / 'o'}", "--num_examples=4", "--budget=fast",
         "--restarts=1", "--attacks=pgd_linf,pgd_l1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "o" / "results.md").exists()


def test_ramp_projection_zero_turns_off_the_flagfiles_projection():
    # beta 0 would train the natural copy every epoch and then ignore it: "none" instead,
    # so that the step cost (and the budget) count no natural-copy step.
    from msd_tf.benchmarks import budgets

    path = "flags/mnist/S/ramp.cfg"
    on = _parse([f"--flagfile={path}"])
    off = _parse([f"--flagfile={path}", "--ramp_projection=0"])
    assert on.adversary_options["projection"] == 0.5
    assert off.adversary_options["projection"] is None
    cost_on, cost_off = budgets.step_cost(on), budgets.step_cost(off)
    assert (cost_on["forward"], cost_on["backward"]) == \
        (cost_off["forward"] + 1, cost_off["backward"] + 1)


def test_the_benchmarks_read_the_evaluations_own_defaults():
    # A unit's key names the digits its evaluation attacks; for flags that leave the split
    # or the count out, it must assume what msd_tf.evaluate then uses.
    from msd_tf import evaluate  # noqa: F401 - defines the evaluation flags
    from msd_tf.benchmarks import units

    assert flags.FLAGS["eval_split"].default == units.EVAL_SPLIT
    assert flags.FLAGS["num_examples"].default == units.NUM_EXAMPLES
    assert units.evaluated([]) == (units.EVAL_SPLIT, units.NUM_EXAMPLES)
    assert units.evaluated(["--num_examples=5", "--eval_split=test[:10]",
                            "--num_examples=200"]) == ("test[:10]", 200)
