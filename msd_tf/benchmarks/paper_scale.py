"""The paper's own scale (`reproduce --scale=paper`): Table 3 (MNIST) or Table 4
(CIFAR-10) with the paper's flagfiles, and the compute-matched union benchmark on
CIFAR-10 (`union_plan`); GPU hours.

Every step is a subprocess of the commands a user types (`runs.run`), its output in
`<output_dir>/logs/`; a finished run folder is reused and a killed one resumed, so the
same call continues where it stopped. Wall times per step accumulate in
`<output_dir>/timings.json`. Budgets S and M (MNIST on a CPU) are `tables`.
"""

import dataclasses
import json
import os

from msd_tf import cli
from msd_tf.benchmarks import paper, reproduction, runs
from msd_tf.benchmarks import union_plan as union
from msd_tf.benchmarks.runs import BenchmarkError


@dataclasses.dataclass(frozen=True)
class Scale:
    """How one paper table is reproduced.

    Attributes:
      dataset: "mnist" or "cifar10"; a model m trains with flags/<dataset>/<m>.cfg.
      evaluate: flags of `msd_tf.evaluate` (besides models, examples, folders).
      examples: the evaluated test examples (the first ones of the test split).
      note: what the scale is, for the table's header.
    """

    dataset: str
    evaluate: tuple[str, ...]
    examples: int
    note: str

    def train(self, model: str) -> list[str]:
        return [f"--flagfile=flags/{self.dataset}/{model}.cfg"]


SCALES = {
    "3": Scale("mnist", ("--flagfile=flags/mnist/eval.cfg", "--suite=strong"), 1000,
               "the paper's flagfiles and evaluation protocol (10 restarts, every attack on "
               "the first 1000 test digits), plus the strong suite"),
    "4": Scale("cifar10", ("--flagfile=flags/cifar10/eval.cfg", "--suite=strong"), 1000,
               "the paper's flagfiles and evaluation protocol, plus the strong suite"),
}

UNION_NOTE = ("CIFAR-10, PreAct ResNet-18: the paper's recipes (flags/cifar10) and E-AT and "
              "RAMP ones at Table 4's radii, epochs (and learning-rate knots) scaled so that "
              "each trainer gets MSD's training compute; E-AT and RAMP also fine-tuned from a "
              "P_inf model trained on two thirds of it; evaluation: Table 4's protocol plus "
              "the strong suite")


@dataclasses.dataclass(frozen=True)
class Request:
    """One `--scale=paper` call: the models (None: all), offline data, where the runs go,
    and whether to only print the commands."""

    models: list[str] | None
    data_dir: str | None
    output_dir: str
    dry_run: bool = False


class Timings:
    """Wall seconds per step, accumulated over resumptions, in timings.json."""

    def __init__(self, path: str):
        self.path = path
        self.values = {}
        if os.path.exists(path):
            with open(path) as f:
                self.values = json.load(f)

    def add(self, step: str, seconds: float) -> None:
        self.values[step] = round(self.values.get(step, 0.0) + seconds, 1)
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.values, f, indent=2, sort_keys=True)
        os.replace(self.path + ".tmp", self.path)


def _chosen(models: list[str] | None, known: list[str], what: str) -> list[str]:
    chosen = models or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        raise BenchmarkError(f"unknown --models {unknown}{what}; known: {known}.")
    return chosen


def _prepare(request: Request) -> Timings:
    if request.data_dir and not os.path.exists(request.data_dir):
        raise BenchmarkError(f"--data_dir {request.data_dir}: no such file or folder.")
    os.makedirs(os.path.join(request.output_dir, "logs"), exist_ok=True)
    return Timings(os.path.join(request.output_dir, "timings.json"))


def _evaluate(scale: Scale, models: list[str], request: Request, timings: Timings) -> None:
    out = request.output_dir
    args = [*scale.evaluate,
            "--models=" + ",".join(os.path.join(out, m, "saved_model") for m in models),
            f"--cache_dir={os.path.join(out, 'cache')}"]
    if request.data_dir:
        args.append(f"--data_dir={request.data_dir}")
    args += [f"--num_examples={scale.examples}", f"--output_dir={os.path.join(out, 'eval')}"]
    print(f"[eval] {len(models)} models", flush=True)
    timings.add("eval", runs.run("msd_tf.evaluate", args, os.path.join(out, "logs", "eval.log"),
                                 dry_run=request.dry_run))


def _train(name: str, flags: list[str], request: Request, timings: Timings) -> None:
    out = request.output_dir
    offline = [f"--data_dir={request.data_dir}"] if request.data_dir else []
    timings.add(f"train/{name}", runs.run(
        "msd_tf.main", [*flags, *offline, f"--output_dir={os.path.join(out, name)}"],
        os.path.join(out, "logs", f"{name}.log"), dry_run=request.dry_run))


def table(number: str, request: Request) -> dict | None:
    """Table 3 or 4 with the paper's own flagfiles: trains every model, evaluates them
    together, writes table<N>.md/.json/.png (`reproduction.write`). Returns their paths
    (None on a dry run).

    Raises:
      BenchmarkError: no such table at this scale, unknown models, a missing flagfile or
        data folder (before any training), a failed step.
    """
    scale = SCALES.get(number)
    if scale is None:
        raise BenchmarkError(f"--table={number} has no --scale=paper; known: "
                             f"{sorted('--table=%s --scale=paper' % k for k in SCALES)}.")
    chosen = _chosen(request.models, list(paper.MODEL_NAMES), "")
    models = [m for m in paper.MODEL_NAMES if m in chosen]
    timings = _prepare(request)
    for m in models:  # a missing flagfile fails now, not after hours of training
        try:
            cli.resolve_flagfile(scale.train(m)[0].split("=", 1)[1])
        except FileNotFoundError as e:
            raise BenchmarkError(str(e)) from e
    for i, m in enumerate(models):
        print(f"[{i + 1}/{len(models)}] {paper.MODEL_NAMES[m]}", flush=True)
        _train(m, scale.train(m), request, timings)
    _evaluate(scale, models, request, timings)
    if request.dry_run:
        return None
    return reproduction.write(request.output_dir, table=int(number), scale="paper",
                              note=scale.note, models=models, timings=timings.values)


def union_benchmark(request: Request) -> dict | None:
    """The compute-matched union benchmark on CIFAR-10 (`union_plan`): plan (plan.json,
    refused if the recipes changed since), train, evaluate with Table 4's protocol,
    report union.md/.json/.png. Returns their paths (None on a dry run).

    Raises:
      BenchmarkError: unknown models, a changed plan, a refused recipe, a failed step.
    """
    scale = SCALES["4"]  # Table 4's evaluation
    methods = union.METHODS["paper"]
    chosen = _chosen(request.models, [m.name for m in methods], " for --table=union")
    needed = set(chosen) | {union.REFERENCE}
    needed |= {m.init_from for m in methods if m.name in needed and m.init_from}
    methods = [m for m in methods if m.name in needed]
    timings = _prepare(request)
    out = request.output_dir
    offline = [f"--data_dir={request.data_dir}"] if request.data_dir else []
    recipes = {m.name: list(m.flags) + offline for m in methods}
    plan_path = os.path.join(out, "plan.json")
    plan = union.load_plan(plan_path)
    changed = union.changed_recipes(plan, recipes) if plan is not None else []
    if changed:
        raise BenchmarkError(f"{plan_path} was planned for other recipes than these (the "
                             f"flags or flagfiles of {changed} changed since); use another "
                             "--output_dir (or delete that folder to start over).")
    if plan is None or set(recipes) - set(plan["recipes"]):
        costs = {}
        for m in methods:  # a missing flagfile fails here, before any training
            print(f"[cost] {m.label}", flush=True)
            costs[m.name] = union.recipe_cost(recipes[m.name], f"the {m.name} recipe")
        plan = {**union.plan_epochs(costs, methods, budget=union.BUDGETS.get("paper")),
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
        _train(m.name, union.train_flags(m, plan, out), request, timings)
    _evaluate(scale, [m.name for m in methods], request, timings)
    if request.dry_run:
        return None
    return union.write(out, methods, plan, timings.values, note=UNION_NOTE)
