"""What each table holds and how it is produced from units (its reports: `reports`).

    python -m msd_tf.reproduce --table=3 --scale=S --data_dir=../shared/data/mnist
    python -m msd_tf.reproduce --table=union --scale=M --data_dir=../shared/data/mnist

Table 3 at budget S: the seven models of the paper's Table 3, each on the S budget.
The union benchmark at S: MSD, MAX, AVG, E-AT and RAMP from scratch and E-AT and RAMP
fine-tuned from a P_inf model (two thirds of the budget, then one third); at M: MSD, E-AT
and RAMP. Every model trains on the paper's protocol (the 60,000 training digits) and is
evaluated on the first 1000 test digits by `flags/mnist/eval_benchmark.cfg` (the filter
table's step-size variants on the first FIGURE_DIGITS). Further evaluations of the same
models (`Benchmark.also`): Tramer and Boneh's for Table 5, Pointwise for the filter table,
each on the first 200 digits.
"""

import dataclasses
import json
import os

from msd_tf.benchmarks import budgets, paper, runs, units
from msd_tf.benchmarks.units import Context, Unit

EVALUATION = ("--flagfile=flags/mnist/eval_benchmark.cfg",)
POINTWISE = (".pointwise", ("--flagfile=flags/mnist/eval_pointwise.cfg",))
TB19 = (".tb19", ("--flagfile=flags/tb19/mnist_eval.cfg",))
PRETRAIN_SHARE = 2 / 3  # P_inf's share, so that it plus a fine-tuning is one budget
# The figures' step-size variants are evaluated on the first 200 test digits, as Pointwise
# is: their table is about filters, and a 1000-digit strong evaluation would cost about
# 50 minutes a model on 2 cores more. The report compares every model on these digits.
FIGURE_DIGITS = 200


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One table at one scale: its units (parents before the units fine-tuning them),
    their evaluation and their budget (passes; None: not budgeted)."""

    table: str
    scale: str
    units: tuple[Unit, ...]
    evaluation: tuple[str, ...]
    budget: float | None
    note: str
    tag: str = ""  # results as <model><tag>.json (another evaluation of shared models)
    # Further evaluations of the same trained models, each its own per-model result
    # (<model><tag>.json), joined to the main result under "also"[tag]: (tag, evaluation).
    also: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _recipe(scale: str, name: str) -> tuple[str, ...]:
    return (f"--flagfile=flags/mnist/{scale}/{name}.cfg",)


def _table3(scale: str) -> tuple[Unit, ...]:
    return tuple(Unit(m, paper.MODEL_NAMES[m], _recipe(scale, m),
                      share=None if m == "vanilla" else 1.0)
                 for m in ("vanilla", "linf", "l2", "l1", "max", "avg", "msd"))


def _union(scale: str, names: tuple[str, ...], finetunings: bool) -> tuple[Unit, ...]:
    labels = {"msd": "MSD", "max": "MAX", "avg": "AVG", "eat": "E-AT", "ramp": "RAMP"}
    out = [Unit(n, labels[n], _recipe(scale, n)) for n in names]
    if finetunings:
        out += [Unit("linf_pretrain", "P_inf (pre-training)", _recipe(scale, "linf_pretrain"),
                     share=PRETRAIN_SHARE),
                Unit("finetune_eat", "P_inf + E-AT", _recipe(scale, "finetune_eat"),
                     share=1 - PRETRAIN_SHARE, init_from="linf_pretrain"),
                Unit("finetune_ramp", "P_inf + RAMP", _recipe(scale, "finetune_ramp"),
                     share=1 - PRETRAIN_SHARE, init_from="linf_pretrain")]
    return tuple(out)


def _section_f(scale: str) -> tuple[Unit, ...]:
    return (Unit("msd", "MSD", _recipe(scale, "msd")),
            Unit("msd_linf_l1", "MSD, l_inf + l_1 only", _recipe(scale, "msd_linf_l1")))


def _filters(scale: str) -> tuple[Unit, ...]:
    """Table 3's P_inf, P_2, P_1, MAX, AVG and MSD (their Table 3 results), and MSD, MAX and
    AVG at alpha_inf 0.01 and 0.03 with the figures' alpha_1 = 0.8, alpha_2 = 0.1 (on the
    first FIGURE_DIGITS digits)."""
    table3 = tuple(u for u in _table3(scale) if u.name != "vanilla")
    labels = {"msd": "MSD", "max": "MAX", "avg": "AVG"}
    return table3 + tuple(
        Unit(f"{m}_a{a}", f"{labels[m]}, alpha_inf 0.{a[1:]}",
             (f"--flagfile=flags/mnist/{scale}/figures/{m}_a{a}.cfg",), digits=FIGURE_DIGITS)
        for m in ("msd", "max", "avg") for a in ("001", "003"))


def _smoke(name: str, adversary: str, *extra: str, **kw) -> Unit:
    return Unit(name, name, ("--flagfile=flags/smoke.cfg", f"--adversary={adversary}",
                             "--msd_steps=2", "--linf_steps=2", "--l2_steps=2",
                             "--l1_steps=2", *extra), **kw)


SMOKE_EVALUATION = ("--dataset=mnist", "--suite=strong", "--restarts=1", "--budget=fast",
                    "--eval_split=test[:100]", "--num_examples=8", "--nocurves",
                    "--attacks=pgd_linf,pgd_l2,pgd_l1,apgd_ce_linf")
_PROTOCOL = ("trained on the 60,000 training digits, evaluated on the first 1000 test "
             "digits (the paper's protocol)")
BENCHMARKS = {
    ("3", "S"): Benchmark("3", "S", _table3("S"), EVALUATION, budgets.BUDGETS["S"],
                          f"budget S ({budgets.BUDGETS['S'] / 1e6:.2f} M example-passes "
                          f"per model; standard training not budgeted); {_PROTOCOL}"),
    ("union", "S"): Benchmark(
        "union", "S", _union("S", ("msd", "max", "avg", "eat", "ramp"), True), EVALUATION,
        budgets.BUDGETS["S"], f"budget S ({budgets.BUDGETS['S'] / 1e6:.2f} M example-passes "
        f"per model, a fine-tuning's P_inf included); {_PROTOCOL}"),
    ("union", "M"): Benchmark(
        "union", "M", _union("M", ("msd", "eat", "ramp"), False), EVALUATION,
        budgets.BUDGETS["M"], f"budget M ({budgets.BUDGETS['M'] / 1e6:.0f} M example-passes "
        f"per model); {_PROTOCOL}"),
    ("F", "S"): Benchmark(
        "F", "S", _section_f("S"), EVALUATION, budgets.BUDGETS["S"],
        f"appendix F at budget S ({budgets.BUDGETS['S'] / 1e6:.2f} M example-passes per "
        f"model): MSD trained on all three norms and on l_inf and l_1 only, both evaluated "
        f"on all three; {_PROTOCOL}"),
    ("filters", "S"): Benchmark(
        "filters", "S", _filters("S"), EVALUATION, budgets.BUDGETS["S"],
        f"appendix E at budget S ({budgets.BUDGETS['S'] / 1e6:.2f} M example-passes per "
        f"model): first-layer filters, and Pointwise at l_2 and l_1; trained on the 60,000 "
        f"training digits; Table 3's models evaluated on the first 1000 test digits, the "
        f"step-size variants and Pointwise on the first {FIGURE_DIGITS}, and every column "
        f"below on those {FIGURE_DIGITS}",
        also=(POINTWISE,)),
    ("5", "S"): Benchmark(
        "5", "S", (Unit("msd", "MSD", _recipe("S", "msd")),), EVALUATION, budgets.BUDGETS["S"],
        "Table 5 at budget S: Table 3's MSD (the same trained model and result) under Tramer "
        "and Boneh's evaluation (their attacks, one run each, eps 0.3 / 2.0 / 10), beside the "
        "strong suite on the same digits; trained on the 60,000 training digits; the "
        "strong suite on the first 1000 test digits, Tramer and Boneh's attacks on the "
        "first 200 (their script's)", also=(TB19,)),
    ("autoattack", "S"): Benchmark(
        "autoattack", "S", (Unit("eat", "E-AT", _recipe("S", "eat")),), EVALUATION,
        budgets.BUDGETS["S"], f"the union benchmark's E-AT at budget S; {_PROTOCOL}",
        tag=".autoattack"),
    ("autoattack", "M"): Benchmark(
        "autoattack", "M", (Unit("eat", "E-AT", _recipe("M", "eat")),), EVALUATION,
        budgets.BUDGETS["M"], f"the union benchmark's best model at budget M (E-AT); "
        f"{_PROTOCOL}", tag=".autoattack"),
    ("3", "smoke"): Benchmark(
        "3", "smoke", (_smoke("msd", "msd"), _smoke("linf", "linf", "--norms=linf")),
        SMOKE_EVALUATION, None, "seconds: two training steps, weak attacks (tests only)"),
    ("union", "smoke"): Benchmark(
        "union", "smoke", (_smoke("msd", "msd"), _smoke("eat", "eat"),
                           _smoke("linf_pretrain", "linf", "--norms=linf"),
                           _smoke("finetune_eat", "eat", "--lr_values=0,5e-4,0",
                                  init_from="linf_pretrain")),
        SMOKE_EVALUATION, None, "seconds: two training steps, weak attacks (tests only)"),
    ("autoattack", "smoke"): Benchmark(
        "autoattack", "smoke", (_smoke("msd", "msd"),), SMOKE_EVALUATION, None,
        "seconds: two training steps, weak attacks (tests only)", tag=".autoattack"),
}


def select(bench: Benchmark, names: list[str] | None) -> list[Unit]:
    """The units named (all if None), with the units they fine-tune, in table order.

    Raises:
      runs.BenchmarkError: an unknown name.
    """
    known = {u.name: u for u in bench.units}
    names = list(known) if names is None else names
    unknown = [n for n in names if n not in known]
    if unknown:
        raise runs.BenchmarkError(f"unknown --models {unknown} for --table={bench.table} "
                                  f"--scale={bench.scale}; known: {list(known)}.")
    needed = set(names)
    needed |= {known[n].init_from for n in names if known[n].init_from}
    return [u for u in bench.units if u.name in needed]


def _add_seconds(folder: str, step: str, value: float) -> float:
    """Adds `value` wall seconds to `step` in the folder's seconds.json and returns the
    step's total over every resumption of the run."""
    path = os.path.join(folder, "seconds.json")
    seconds = {}
    if os.path.exists(path):
        with open(path) as f:
            seconds = json.load(f)
    seconds[step] = round(seconds.get(step, 0.0) + value, 1)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(seconds, f)
    return seconds[step]


def _measure(unit: Unit, ctx: Context, key: str, description: dict,
             parent: tuple | None, parent_result: dict | None,
             main: dict | None = None) -> dict | None:
    """Trains (or resumes) and evaluates one unit and writes its result; returns it (None
    on a dry run). `parent`: (unit, description) of the model it is fine-tuned from,
    trained again first if it is no longer on disk. `main`: for a further evaluation, the
    unit's main result, which the model on disk must still be (else a warning)."""
    folder = units.run_dir(unit, ctx, description)
    parent_dir = None
    if parent:
        parent_unit, parent_description = parent
        parent_dir = units.run_dir(parent_unit, ctx, parent_description)
        if not os.path.exists(os.path.join(parent_dir, "saved_model")):
            print(f"  {parent_unit.label}'s model is not on disk: training it again "
                  "(seeded: the same weights)", flush=True)
            units.train(parent_unit, ctx, parent_description, None)
    seconds = {"train": _add_seconds(folder, "train",
                                     units.train(unit, ctx, description, parent_dir))}
    if main and not ctx.dry_run:
        layer = units.first_layer(os.path.join(folder, "saved_model"))
        if units.same_model(main, {"first_layer": layer}) is False:
            print(f"warning: {unit.label}'s model on disk is not the one its main result "
                  "measured (trained again since, on another CPU or code): this evaluation "
                  "will not be compared with it digit by digit. To compare, delete the main "
                  "result and run the table again.", flush=True)
    seconds["evaluate"] = _add_seconds(units.eval_dir(unit, ctx, description), "evaluate",
                                       units.evaluate(unit, ctx, description))
    if ctx.dry_run:
        return None
    try:
        result = units.collect(unit, ctx, key, description, seconds, parent_result)
    except (OSError, ValueError, KeyError) as e:
        raise runs.BenchmarkError(f"{unit.name}: its run or evaluation in {folder} is "
                                  f"unreadable ({e}); delete that folder and run the "
                                  "same command again.") from e
    units.save_result(result, units.result_path(unit, ctx))
    print(f"  union {result['accuracy']['union']}% -> {units.result_path(unit, ctx)}",
          flush=True)
    return result


def produce(bench: Benchmark, ctx: Context, names: list[str] | None = None,
            refresh: frozenset = frozenset(), committed_only: bool = False,
            main: dict | None = None) -> dict:
    """Every selected unit's result: committed and current, else trained and evaluated
    now (and written to `ctx.results_dir`). Returns {name: result}. The units named in
    `refresh` are trained (resumed) and evaluated even if their result is current: a
    step that needs their model on disk. `committed_only`: nothing is trained; a unit
    without a current result is left out of the returned results. `main`: for a further
    evaluation, {name: main result} (`_measure`).

    Raises:
      runs.BenchmarkError: a recipe off its budget, a failed step, unreadable output.
    """
    chosen = select(bench, names)
    descriptions, results = {}, {}
    for i, unit in enumerate(chosen):
        parent_description = descriptions.get(unit.init_from)
        description = units.describe(unit, ctx, parent_description
                                     and parent_description["_train_key"])
        descriptions[unit.name] = description
        key = units.key_of(description)
        tag = f"[{i + 1}/{len(chosen)}] {unit.label}"
        result, why = units.load_result(unit, ctx, key)
        if ctx.budget and unit.share is not None and (result or not committed_only):
            # a unit left out is not planned: no training step traced, no TensorFlow
            off = budgets.check(units.planned_passes(description, result), ctx.budget,
                                unit.share)
            if off:
                raise runs.BenchmarkError(f"{unit.name} ({unit.recipe[0]}) {off}.")
        if description["_note"]:
            print(f"note: {description['_note']}", flush=True)
        if unit.name in refresh:
            result, why = None, "its model is needed on disk"
        if result is not None:
            print(f"{tag}: committed result {units.result_path(unit, ctx)} (key {key[:10]})",
                  flush=True)
            if bench.table == "filters" and not result.get("first_layer"):
                result = units.add_first_layer(result, unit, ctx, description)
            results[unit.name] = result
            continue
        if committed_only:
            print(f"{tag}: {why}; left out (not measured yet)", flush=True)
            continue
        print(f"{tag}: {why}; training and evaluating", flush=True)
        parent = None
        if unit.init_from:
            parent_unit = next(u for u in chosen if u.name == unit.init_from)
            parent = (parent_unit, descriptions[parent_unit.name])
        result = _measure(unit, ctx, key, description, parent, results.get(unit.init_from),
                          (main or {}).get(unit.name))
        if result is not None:
            results[unit.name] = result
    return results


def produce_all(bench: Benchmark, ctx: Context, names: list[str] | None = None,
                committed_only: bool = False) -> dict:
    """`produce` for the benchmark's evaluation, then for each of its further evaluations
    (`Benchmark.also`) of the same models: each unit's result with the others' under
    "also"[tag]. A unit without its main result is left out."""
    results = produce(bench, ctx, names, committed_only=committed_only)
    for tag, evaluation in bench.also:
        print(f"The same models under {' '.join(evaluation)} (results <model>{tag}.json):",
              flush=True)
        other = dataclasses.replace(bench, table=f"{bench.table}{tag}", evaluation=evaluation,
                                    tag=tag, also=())
        extra = produce(other, dataclasses.replace(ctx, evaluation=evaluation, tag=tag), names,
                        committed_only=committed_only, main=results)
        for name, result in extra.items():
            if name in results:
                results[name] = dict(results[name],
                                     also={**results[name].get("also", {}), tag: result})
    return results
