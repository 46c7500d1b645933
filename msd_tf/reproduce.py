"""`python -m msd_tf.reproduce --table=3|union --scale=S|M --data_dir=../shared/data/mnist`:
a paper table, or the union benchmark, from one command.

At budgets S and M (`msd_tf.benchmarks`) every model is one unit, trained on the paper's
protocol (the 60,000 training digits; a folder holding only the test split trains on
test[1000:] and says so) and evaluated on the first 1000 test digits by
flags/mnist/eval_benchmark.cfg. Its small result is written to
`<results_dir>/<scale>/<model>.json`; a result there whose key (recipe, data, evaluation,
behaviour version) matches is reused, so the tables in docs/results are assembled from
per-model results committed by earlier runs; a changed recipe is trained again.

`--scale=paper` runs the paper's own flagfiles (Table 3, Table 4, the union benchmark on
CIFAR-10; GPU hours) into `--output_dir`: every step a subprocess of the commands a user
types, with its output in `<output_dir>/logs/`; killed at any point, the same command
continues.
"""

import dataclasses
import json
import os

from absl import app, flags

from msd_tf import cli
from msd_tf.benchmarks import paper
from msd_tf.benchmarks import union_plan as union

_TABLE = flags.DEFINE_enum(
    "table", "3", ["3", "4", "5", "union", "F", "filters"], "Paper table: 3 (MNIST), 4 "
    "(CIFAR-10), 5 (Table 3's MSD under Tramer and Boneh's evaluation); union: the "
    "compute-matched union benchmark (MSD, MAX, AVG, E-AT, RAMP, and E-AT / RAMP "
    "fine-tuned from P_inf, each on MSD's training compute), MNIST; F: appendix "
    "F (MSD on l_inf + l_1 only, evaluated on all three norms); filters: appendix E "
    "(first-layer filters of Table 3's models and of MSD/MAX/AVG at alpha_inf 0.01, 0.03).")
_SCALE = flags.DEFINE_enum(
    "scale", "S", ["S", "M", "paper", "smoke"],
    "S, M: the budgets of msd_tf.benchmarks.budgets (flags/mnist/S, flags/mnist/M; per-model "
    "results committed under --results_dir and reused while current); paper: the paper's "
    "flagfiles (GPU hours); smoke: seconds, meaningless numbers (tests).")
_MODELS = flags.DEFINE_list("models", None, "Models to train and evaluate (default: all).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Offline data (e.g. ../shared/data/mnist); a folder with only the "
    "test split trains on test[1000:] instead of the training split and says so. Unset: "
    "tensorflow-datasets.")
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", "docs/results", "S, M, smoke: per-model results (<results_dir>/<scale>/"
    "<model>.json, reused while their key matches) and the tables assembled from them.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "runs/benchmarks", "S, M, smoke: run folders (<work_dir>/<scale>/...).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: runs/table<N>_<scale>.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")

SLOW_ATTACKS = ("boundary", "cw_l2", "pointwise_l2", "pointwise_l1")


@dataclasses.dataclass(frozen=True)
class Scale:
    """How one table is reproduced at one scale.

    Attributes:
      train: flags of `msd_tf.main` for a model (its flagfile and overrides).
      evaluate: flags of `msd_tf.evaluate` shared by both evaluations.
      examples: examples of the main evaluation (every attack but the slow ones if
        `slow_examples` is set).
      slow_examples: examples on which the slow attacks run, after the main evaluation
        and only on the examples it left robust (None: they run in the main one).
      offline: training / evaluation flags added with `--data_dir`.
      note: what the scale changes from the paper, for the table's header.
      main_flags, slow_flags: flags of the main and the slow evaluation only.
    """

    train: callable
    evaluate: tuple[str, ...]
    examples: int
    slow_examples: int | None
    offline: tuple[str, ...]
    note: str
    main_flags: tuple[str, ...] = ()
    slow_flags: tuple[str, ...] = ()


def _paper_flags(dataset):
    return lambda m: [f"--flagfile=flags/{dataset}/{m}.cfg"]


SCALES = {
    ("3", "paper"): Scale(
        _paper_flags("mnist"), ("--flagfile=flags/mnist/eval.cfg", "--suite=strong"), 1000,
        None, (),
        "the paper's flagfiles and evaluation protocol (10 restarts, every attack on the "
        "first 1000 test digits), plus the strong suite"),
    ("4", "paper"): Scale(
        _paper_flags("cifar10"), ("--flagfile=flags/cifar10/eval.cfg", "--suite=strong"),
        1000, None, (), "the paper's flagfiles and evaluation protocol, plus the strong "
        "suite"),
}


def _dataset(table: str) -> str:
    if table == "union":
        return "cifar10" if _SCALE.value == "paper" else "mnist"
    return paper.DATASET_OF_TABLE[int(table)]


def _run(cmd: list[str], log_path: str, *, dry_run: bool) -> float:
    """`cmd` is ["-m", module, *args]: the one run helper (runs.run)."""
    from msd_tf.benchmarks import runs

    return runs.run(cmd[1], cmd[2:], log_path, dry_run=dry_run)


class _Timings:
    """Wall seconds per step, accumulated over resumptions, in timings.json."""

    def __init__(self, path: str):
        self.path = path
        self.values = {}
        if os.path.exists(path):
            with open(path) as f:
                self.values = json.load(f)

    def add(self, key: str, seconds: float) -> None:
        self.values[key] = round(self.values.get(key, 0.0) + seconds, 1)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.values, f, indent=2, sort_keys=True)
        os.replace(self.path + ".tmp", self.path)


def _evaluate_args(scale: Scale, models: list[str], out: str, data_dir, *, slow: bool):
    from msd_tf.evaluation import suite

    paths = ",".join(os.path.join(out, m, "saved_model") for m in models)
    args = ["-m", "msd_tf.evaluate", *[a for a in scale.evaluate if not a.startswith(
        "--attacks=")], f"--models={paths}", f"--cache_dir={os.path.join(out, 'cache')}",
            *(scale.slow_flags if slow else scale.main_flags)]
    if data_dir:
        args.append(f"--data_dir={data_dir}")
    if scale.slow_examples is None:
        return args + [f"--num_examples={scale.examples}",
                       f"--output_dir={os.path.join(out, 'eval')}"]
    names = [a.split("=", 1)[1].split(",") for a in scale.evaluate if a.startswith("--attacks=")]
    if names:
        names = names[0]
    else:  # every attack of the strong suite
        dataset = _dataset(_TABLE.value)
        names = [s.name for s in suite.paper_suite(dataset) + suite.strong_additions(dataset)]
    chosen = [n for n in names if (n in SLOW_ATTACKS) == slow]
    if slow:  # only on what the main evaluation left robust
        args += [f"--only_robust={','.join(chosen)}",
                 f"--prune_with={os.path.join(out, 'eval')}"]
    return args + [f"--attacks={','.join(chosen)}",
                   f"--num_examples={scale.slow_examples if slow else scale.examples}",
                   f"--output_dir={os.path.join(out, 'eval_slow' if slow else 'eval')}"]


def _benchmark(table: str, scale_name: str) -> None:
    """Budgets S, M (and smoke): units with committed results (msd_tf.benchmarks)."""
    from msd_tf import data
    from msd_tf.benchmarks import runs, tables
    from msd_tf.benchmarks.units import Context

    bench = tables.BENCHMARKS.get((table, scale_name))
    if bench is None:
        cli.fail(f"--table={table} has no --scale={scale_name}; known: "
                 f"{sorted('--table=%s --scale=%s' % k for k in tables.BENCHMARKS)}.")
    data_dir = _DATA_DIR.value
    if data_dir and not os.path.exists(data_dir):
        cli.fail(f"--data_dir {data_dir}: no such file or folder.")
    ctx = Context(scale_name, bench.evaluation, data_dir,
                  os.path.join(_RESULTS_DIR.value, scale_name),
                  os.path.join(_WORK_DIR.value, scale_name), bench.budget, _DRY_RUN.value,
                  tag=bench.tag)
    try:
        results = tables.produce(bench, ctx, _MODELS.value)
    except (runs.BenchmarkError, data.DataError, ValueError) as e:
        cli.fail(str(e))
    if _DRY_RUN.value:
        return
    paths = tables.write(bench, results, _RESULTS_DIR.value)
    with open(paths["md"]) as f:
        print(f.read())


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    from msd_tf.benchmarks import runs

    table, scale_name = _TABLE.value, _SCALE.value
    try:
        if scale_name != "paper":
            return _benchmark(table, scale_name)
        if table == "union":
            return _union(scale_name)
        return _paper_table(table, scale_name)
    except runs.BenchmarkError as e:
        cli.fail(str(e))


def _paper_table(table: str, scale_name: str) -> None:
    """Table 3 or 4 with the paper's own flagfiles (GPU hours)."""
    scale = SCALES.get((table, scale_name))
    if scale is None:
        cli.fail(f"--table={table} has no --scale={scale_name}; known: "
                 f"{sorted('--table=%s --scale=%s' % k for k in SCALES)}.")
    chosen = _MODELS.value or list(paper.MODEL_NAMES)
    unknown = [m for m in chosen if m not in paper.MODEL_NAMES]
    if unknown:
        cli.fail(f"unknown --models {unknown}; known: {list(paper.MODEL_NAMES)}.")
    models = [m for m in paper.MODEL_NAMES if m in chosen]
    data_dir = _DATA_DIR.value
    if data_dir and not os.path.exists(data_dir):
        cli.fail(f"--data_dir {data_dir}: no such file or folder.")
    for m in models:  # a missing flagfile fails now, not after hours of training
        for flag in scale.train(m):
            if flag.startswith("--flagfile="):
                try:
                    cli.resolve_flagfile(flag.split("=", 1)[1])
                except FileNotFoundError as e:
                    cli.fail(str(e))
    out = _OUTPUT_DIR.value or os.path.join("runs", f"table{table}_{scale_name}")
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    timings = _Timings(os.path.join(out, "timings.json"))
    dry = _DRY_RUN.value
    for i, m in enumerate(models):
        print(f"[{i + 1}/{len(models)}] {paper.MODEL_NAMES[m]}", flush=True)
        cmd = ["-m", "msd_tf.main", *scale.train(m)]
        if data_dir:
            cmd += [f"--data_dir={data_dir}", *scale.offline]
        cmd.append(f"--output_dir={os.path.join(out, m)}")
        timings.add(f"train/{m}", _run(cmd, os.path.join(out, "logs", f"{m}.log"),
                                       dry_run=dry))
    passes = [False] + ([True] if scale.slow_examples is not None else [])
    for slow in passes:
        name = "eval_slow" if slow else "eval"
        print(f"[{name}] {len(models)} models", flush=True)
        timings.add(name, _run(_evaluate_args(scale, models, out, data_dir, slow=slow),
                               os.path.join(out, "logs", f"{name}.log"), dry_run=dry))
    if dry:
        return
    from msd_tf.benchmarks import reproduction

    paths = reproduction.write(out, table=int(table), scale=scale_name,
                                      note=scale.note, models=models,
                                      timings=timings.values)
    with open(paths["md"]) as f:
        print(f.read())


def _union(scale_name: str) -> None:
    """The compute-matched union benchmark (msd_tf/benchmarks/union_plan.py): plan, train, evaluate,
    report; every step reused or resumed when the same command runs again."""
    if scale_name not in union.METHODS:
        cli.fail(f"--table=union has no --scale={scale_name}; known: "
                 f"{sorted(union.METHODS)}.")
    scale = SCALES[("4", "paper")]  # Table 4's evaluation
    methods = union.METHODS[scale_name]
    known = [m.name for m in methods]
    chosen = _MODELS.value or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        cli.fail(f"unknown --models {unknown} for --table=union; known: {known}.")
    needed = set(chosen) | {union.REFERENCE}
    needed |= {m.init_from for m in methods if m.name in needed and m.init_from}
    methods = [m for m in methods if m.name in needed]
    data_dir = _DATA_DIR.value
    if data_dir and not os.path.exists(data_dir):
        cli.fail(f"--data_dir {data_dir}: no such file or folder.")
    out = _OUTPUT_DIR.value or os.path.join("runs", f"union_{scale_name}")
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    timings = _Timings(os.path.join(out, "timings.json"))
    dry = _DRY_RUN.value
    offline = [f"--data_dir={data_dir}", *scale.offline] if data_dir else []

    recipes = {m.name: list(m.flags) + offline for m in methods}
    plan_path = os.path.join(out, "plan.json")
    plan = union.load_plan(plan_path)
    changed = union.changed_recipes(plan, recipes) if plan is not None else []
    if changed:
        cli.fail(f"{plan_path} was planned for other recipes than these (the flags or "
                 f"flagfiles of {changed} changed since); use another --output_dir "
                 f"(or delete that folder to start over).")
    if plan is None or set(recipes) - set(plan["recipes"]):
        costs = {}
        for m in methods:  # a missing flagfile fails here, before any training
            print(f"[cost] {m.label}", flush=True)
            costs[m.name] = union.recipe_cost(recipes[m.name], f"the {m.name} recipe")
        plan = {**union.plan_epochs(costs, methods, budget=union.BUDGETS.get(scale_name)),
                "costs": costs, "recipes": recipes,
                "recipe_keys": {n: union.recipe_key(f) for n, f in recipes.items()}}
        with open(plan_path + ".tmp", "w") as f:
            json.dump(plan, f, indent=2)
        os.replace(plan_path + ".tmp", plan_path)
    for i, m in enumerate(methods):  # pre-training before the fine-tunings (list order)
        p = plan[m.name]
        print(f"[{i + 1}/{len(methods)}] {m.label}: {p['epochs']} epochs, "
              f"{p['planned_passes_per_example']:g} passes per example "
              f"(budget {plan['budget_passes_per_example']:g})", flush=True)
        cmd = ["-m", "msd_tf.main", *union.train_flags(m, plan, out), *offline,
               f"--output_dir={os.path.join(out, m.name)}"]
        timings.add(f"train/{m.name}", _run(cmd, os.path.join(out, "logs", f"{m.name}.log"),
                                            dry_run=dry))
    names = [m.name for m in methods]
    print(f"[eval] {len(names)} models", flush=True)
    timings.add("eval", _run(_evaluate_args(scale, names, out, data_dir, slow=False),
                             os.path.join(out, "logs", "eval.log"), dry_run=dry))
    if dry:
        return
    paths = union.write(out, methods, plan, timings.values, note=UNION_NOTES[scale_name])
    with open(paths["md"]) as f:
        print(f.read())


UNION_NOTES = {
    "paper": "CIFAR-10, PreAct ResNet-18: the paper's recipes (flags/cifar10) and E-AT and "
             "RAMP ones at Table 4's radii, epochs (and learning-rate knots) scaled so that "
             "each trainer gets MSD's training compute; E-AT and RAMP also fine-tuned from a "
             "P_inf model trained on two thirds of it; evaluation: Table 4's protocol plus "
             "the strong suite",
}


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
