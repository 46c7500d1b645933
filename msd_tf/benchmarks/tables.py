"""What each table holds, how it is produced from units, and its reports.

    python -m msd_tf.reproduce --table=3 --scale=S --data_dir=../shared/data/mnist
    python -m msd_tf.reproduce --table=union --scale=M --data_dir=../shared/data/mnist

Table 3 at budget S: the seven models of the paper's Table 3, each on the S budget.
The union benchmark at S: MSD, MAX, AVG, E-AT and RAMP from scratch and E-AT and RAMP
fine-tuned from a P_inf model (two thirds of the budget, then one third); at M: MSD, E-AT
and RAMP. Every model trains on the paper's protocol (the 60,000 training digits) and is
evaluated on the first 1000 test digits by `flags/mnist/eval_benchmark.cfg`.
"""

import dataclasses
import json
import os

from msd_tf.benchmarks import budgets, paper, runs, units
from msd_tf.benchmarks.units import Context, Unit

EVALUATION = ("--flagfile=flags/mnist/eval_benchmark.cfg",)
PRETRAIN_SHARE = 2 / 3  # P_inf's share, so that it plus a fine-tuning is one budget


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
    """Table 3's P_inf, P_2, P_1, MAX, AVG and MSD, and MSD, MAX and AVG at alpha_inf 0.01
    and 0.03 with the figures' alpha_1 = 0.8, alpha_2 = 0.1."""
    table3 = tuple(u for u in _table3(scale) if u.name != "vanilla")
    labels = {"msd": "MSD", "max": "MAX", "avg": "AVG"}
    return table3 + tuple(
        Unit(f"{m}_a{a}", f"{labels[m]}, alpha_inf 0.{a[1:]}",
             (f"--flagfile=flags/mnist/{scale}/figures/{m}_a{a}.cfg",))
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
        f"model): first-layer filters; {_PROTOCOL}"),
    ("5", "S"): Benchmark(
        "5", "S", (Unit("msd", "MSD", _recipe("S", "msd")),),
        ("--flagfile=flags/tb19/mnist_eval.cfg",), budgets.BUDGETS["S"],
        f"Table 5 at budget S: Table 3's MSD (the same trained model) under Tramer and "
        f"Boneh's evaluation (their attacks, one run each, eps 0.3 / 2.0 / 10); {_PROTOCOL}",
        tag=".tb19"),
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
             parent: tuple | None, parent_result: dict | None) -> dict | None:
    """Trains (or resumes) and evaluates one unit and writes its result; returns it (None
    on a dry run). `parent`: (unit, description) of the model it is fine-tuned from,
    trained again first if it is no longer on disk."""
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
            refresh: frozenset = frozenset(), committed_only: bool = False) -> dict:
    """Every selected unit's result: committed and current, else trained and evaluated
    now (and written to `ctx.results_dir`). Returns {name: result}. The units named in
    `refresh` are trained (resumed) and evaluated even if their result is current: a
    step that needs their model on disk. `committed_only`: nothing is trained; a unit
    without a current result is left out of the returned results.

    Raises:
      runs.BenchmarkError: a recipe off its budget, a failed step, unreadable output.
    """
    chosen = select(bench, names)
    keys, descriptions, results = {}, {}, {}
    for i, unit in enumerate(chosen):
        description = units.describe(unit, ctx, keys.get(unit.init_from))
        descriptions[unit.name] = description
        keys[unit.name] = key = units.key_of(description)
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
        result = _measure(unit, ctx, key, description, parent, results.get(unit.init_from))
        if result is not None:
            results[unit.name] = result
    return results


HEAD = {"clean": "clean", "linf": "l_inf", "l2": "l_2", "l1": "l_1", "union": "union"}
COLS = ("clean", "linf", "l2", "l1", "union")


def cell(v) -> str:
    """A table cell: a percentage to one decimal, or "-" where there is none."""
    return "-" if v is None else f"{v:.1f}"


def _evaluate_minutes(s: dict) -> str:
    """The evaluation's wall minutes; with attacks read from the cache, also what the
    attacks took when they ran."""
    wall = f"{s.get('evaluate', 0) / 60:.1f}"
    if not s.get("cached_attacks"):
        return wall
    return f"{wall} ({s['attacks'] / 60:.1f} in attacks, {s['cached_attacks']} cached)"


def _provenance(results: dict) -> list[str]:
    lines = ["| model | trained on | evaluated | precision | train (min) | evaluate (min) "
             "| machine | commit | date |", "|---" * 9 + "|"]
    for r in results.values():
        s = r["seconds"]
        lines.append(
            f"| {r['label']} | {r['train_split']} | {r['eval_split']}, first "
            f"{r['num_examples']} | {r['precision']} | {s.get('train', 0) / 60:.1f} | "
            f"{_evaluate_minutes(s)} | {r['machine']} | {r['git_commit']} | "
            f"{r['date']} |")
    return lines


def table3(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """Table 3's report: ours (the benchmark's suite) beside the paper's numbers."""
    theirs = paper.TABLES[3]
    rows = {}
    for name, r in results.items():
        p = {("union" if k == "all" else k): v for k, v in theirs.get(name, {}).items()}
        rows[name] = {"label": r["label"], "ours": r["accuracy"],
                      "paper_attacks": r["paper_attacks"], "paper": p or None}
    lines = [f"# Table 3 at budget {bench.scale}", "", f"{bench.note}.", "",
             "Robust accuracy (%) under every attack of the suite; in brackets the "
             "paper's number and our difference.", "",
             "| model | " + " | ".join(HEAD[c] for c in COLS) + " | union, paper's attacks "
             "only |", "|---" * (len(COLS) + 2) + "|"]
    for row in rows.values():
        cells = []
        for c in COLS:
            ours, ref = row["ours"].get(c), (row["paper"] or {}).get(c)
            cells.append(cell(ours) if ref is None or ours is None
                         else f"{ours:.1f} ({ref:.1f}, {ours - ref:+.1f})")
        lines.append(f"| {row['label']} | " + " | ".join(cells)
                     + f" | {cell(row['paper_attacks'].get('union'))} |")
    return lines, {"rows": rows}


def union(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """The union benchmark's report: robust accuracy and the compute each model spent."""
    rows = {}
    for name, r in results.items():
        c = r["compute"]
        rows[name] = {"label": r["label"], "ours": r["accuracy"], "from": r["init_from"],
                      "paper_attacks": r["paper_attacks"], "passes": c["passes"],
                      "total_passes": c["total_passes"],
                      "of_budget": round(c["total_passes"] / bench.budget, 3)
                      if bench.budget else None}
    lines = [f"# Union benchmark at budget {bench.scale}", "", f"{bench.note}.", "",
             "| method | " + " | ".join(HEAD[c] for c in COLS)
             + " | union, paper's attacks | passes (M) | of budget |", "|---" * 9 + "|"]
    for row in sorted(rows.values(), key=lambda r: -(r["ours"]["union"] or 0)):
        budget = "-" if row["of_budget"] is None else f"{row['of_budget']:.2f}"
        lines.append(f"| {row['label']} | " + " | ".join(cell(row["ours"].get(c))
                                                         for c in COLS)
                     + f" | {cell(row['paper_attacks'].get('union'))} | "
                     f"{row['total_passes'] / 1e6:.2f} | {budget} |")
    return lines, {"rows": rows}


def _f_rows(full: dict | None, part: dict | None, field: str) -> tuple[list[str], dict | None]:
    """Appendix F's rows (the full MSD, MSD on l_inf + l_1, their difference) of one
    measure of the results: `accuracy` (the evaluation's) or `paper_attacks`."""
    lines = ["| model | " + " | ".join(HEAD[c] for c in COLS) + " | passes (M) |",
             "|---" * (len(COLS) + 2) + "|"]
    for r in (full, part):
        if r:
            lines.append(f"| {r['label']} | " + " | ".join(cell(r.get(field, {}).get(c))
                                                          for c in COLS)
                         + f" | {r['compute']['total_passes'] / 1e6:.2f} |")
    if not (full and part):
        return lines, None
    a, b = full.get(field, {}), part.get(field, {})
    diff = {c: None if a.get(c) is None or b.get(c) is None else round(b[c] - a[c], 1)
            for c in COLS}
    lines.append("| difference | " + " | ".join(
        "-" if diff[c] is None else f"{diff[c]:+.1f}" for c in COLS) + " | |")
    return lines, diff


def section_f(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """Appendix F: MSD on l_inf + l_1 only beside the full MSD, on all three norms, under
    the evaluation and under the paper's attacks alone (how the paper measured it)."""
    full, part = results.get("msd"), results.get("msd_linf_l1")
    ours, diff = _f_rows(full, part, "accuracy")
    theirs, paper_diff = _f_rows(full, part, "paper_attacks")
    lines = [f"# Appendix F at budget {bench.scale}", "", f"{bench.note}.", "",
             "Under the evaluation (the paper's attacks and the strong suite's):", "", *ours,
             "", "Under the paper's attacks alone (1 restart), as the paper measured it:", "",
             *theirs]
    lines += ["", "The paper (appendix F): without l_2 training, l_inf and l_1 about 1 point "
              "and l_2 about 2 points below the full MSD (" + ", ".join(
                  f"{HEAD[n]} {v:+g}" for n, v in paper.SECTION_F_DIFFERENCE.items()) + ")."]
    return lines, {"difference": diff, "paper_attacks_difference": paper_diff,
                   "paper_difference": paper.SECTION_F_DIFFERENCE}


def filters_report(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """Appendix E: each model's thresholding first-layer filters, beside its robustness."""
    lines = [f"# First-layer filters at budget {bench.scale}", "", f"{bench.note}.", "",
             "A thresholding filter has one dominant weight: its second-largest |weight| is "
             f"below {FILTER_RATIO} x the largest (`msd_tf/evaluation/filters.py`). Images: "
             f"`filters/{bench.scale}/<model>.png`.", "",
             "| model | alpha_inf | thresholding filters | " + " | ".join(
                 HEAD[c] for c in COLS) + " |", "|---" * (len(COLS) + 3) + "|"]
    rows = {}
    for name, r in results.items():
        fl = r.get("first_layer") or {}
        alpha = next((t["alpha"] for t in r.get("threats") or [] if t["norm"] == "linf"),
                     None)
        rows[name] = {"label": r["label"], "thresholding": fl.get("thresholding"),
                      "filters": fl.get("filters"), "linf_alpha": alpha,
                      "accuracy": r["accuracy"]}
        count = "-" if fl.get("thresholding") is None else \
            f"{fl['thresholding']} of {fl['filters']}"
        lines.append(f"| {r['label']} | {'-' if alpha is None else f'{alpha:g}'} | {count} | "
                     + " | ".join(cell(r["accuracy"].get(c)) for c in COLS) + " |")
    return lines, {"rows": rows}


def table5(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """Table 5: MSD under Tramer and Boneh's evaluation beside the paper's column."""
    lines = [f"# Table 5 at budget {bench.scale}", "", f"{bench.note}.", "",
             "| model | " + " | ".join(HEAD[c] for c in COLS) + " |",
             "|---" * (len(COLS) + 1) + "|"]
    theirs = {("union" if k == "all" else k): v for k, v in paper.TABLE_5["msd"].items()}
    for r in results.values():
        lines.append(f"| {r['label']} (ours) | " + " | ".join(cell(r["accuracy"].get(c))
                                                              for c in COLS) + " |")
    lines.append("| MSD (paper) | " + " | ".join(cell(theirs.get(c)) for c in COLS) + " |")
    return lines, {"paper": theirs}


REPORTS = {"3": table3, "union": union, "F": section_f, "filters": filters_report,
           "5": table5}
STEMS = {"3": "table3_{scale}", "union": "union_{scale}", "F": "section_f_{scale}",
         "filters": "filters_{scale}", "5": "table5_{scale}"}
FILTER_RATIO = 0.25


def write(bench: Benchmark, results: dict, out: str) -> dict:
    """`<out>/table<N>_<scale>.md/.json` (and for the union benchmark the compute figure
    over the union tables of every scale); returns their paths."""
    stem = STEMS[bench.table].format(scale=bench.scale)
    lines, data = REPORTS[bench.table](bench, results)
    suites = {tuple(r["suite"]) for r in results.values()}
    attacks = "; ".join(", ".join(s) for s in sorted(suites)) or "none yet (no model measured)"
    lines += ["", f"Attacks: {attacks}.", "",
              "## Where each number comes from", "",
              f"Each row is a committed per-model result under `{bench.scale}/` (command: "
              f"`python -m msd_tf.reproduce --table={bench.table} --scale={bench.scale} "
              "--data_dir=../shared/data/mnist`).", "", *_provenance(results)]
    missing = [u.label for u in bench.units if u.name not in results]
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)} (the command above trains "
                  "and evaluates them)."]
    data.update(table=bench.table, scale=bench.scale, note=bench.note, budget=bench.budget,
                results={n: {k: v for k, v in r.items() if k != "robust"}
                         for n, r in results.items()})
    os.makedirs(out, exist_ok=True)
    paths = {"md": os.path.join(out, f"{stem}.md"), "json": os.path.join(out, f"{stem}.json")}
    with open(paths["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["json"], "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    if bench.table == "filters":
        paths.update(draw_filters(results, os.path.join(out, "filters", bench.scale)))
    if bench.table == "union":
        png = os.path.join(out, "union_compute.png")
        if plot_union(out, png):
            paths["png"] = png
    return paths


def draw_filters(results: dict, folder: str) -> dict:
    """`<folder>/<model>.png`: each result's first-layer filters (kept in the result)."""
    import numpy as np

    from msd_tf.evaluation import filters

    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, r in results.items():
        fl = r.get("first_layer")
        if fl:
            paths[name] = os.path.join(folder, f"{name}.png")
            filters.plot_filters(np.asarray(fl["kernel"], np.float32), paths[name],
                                 title=f"{r['label']}: {fl['thresholding']} thresholding")
    return paths


def plot_union(results_root: str, path: str) -> dict:
    """Union robust accuracy against training compute: one curve per method through the
    budgets it has current results at: the rows of `<results_root>/union_<scale>.json`,
    which the table command wrote from the results it found current (a stale result file
    is not a point). With none, no figure (an earlier one is removed). Returns the curves
    drawn: {method: [(M passes, union %)]}."""
    methods = {}
    for scale in ("S", "M"):
        path_of_table = os.path.join(results_root, f"union_{scale}.json")
        if not os.path.exists(path_of_table):
            continue
        with open(path_of_table) as f:
            rows = json.load(f)["rows"]  # the results that table checked as current
        for name, row in rows.items():
            if name != "linf_pretrain" and row["ours"].get("union") is not None:
                methods.setdefault(row["label"], []).append(
                    (row["total_passes"] / 1e6, row["ours"]["union"]))
    if not methods:
        if os.path.exists(path):
            os.remove(path)
        return methods
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(methods.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training compute (M example-passes)")
    ax.set_ylabel("union robust accuracy (%)")
    ax.set_title("Union robustness per compute (first 1000 test digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return methods
