"""The original AutoAttack beside our evaluation, on a benchmark's models:

    python -m msd_tf.reproduce --table=autoattack --scale=M --data_dir=../shared/data/mnist

For each unit: its result (committed and current, else trained and evaluated now, as every
table does), then `scripts/compare_autoattack.py` on the unit's own model and digits (the
authors' AutoAttack, standard version, every norm, in PyTorch on a port of the model),
then a comparison result `<results_dir>/<scale>/<unit>.autoattack.json`: per norm and for
the union, both robust accuracies, the digits each calls robust that the other breaks,
AutoAttack's per-digit robust flags, and both evaluations' times and machines.

A comparison is keyed by its unit's key, the per-digit robust flags of the unit's committed
result (so it belongs to that trained model and evaluation) and AutoAttack's version and
seed; a stale one is run again, never reused. AutoAttack needs the model on disk: when the
unit's run folder lost it (or holds another evaluation than the committed one), the unit is
trained and evaluated again first, and its committed result replaced by the new model's.
Killed in AutoAttack, the same command continues with the norms it has not finished.
"""

import dataclasses
import datetime
import json
import os

from msd_tf import fingerprints, machine
from msd_tf.benchmarks import reports, runs, tables, units
from msd_tf.benchmarks.units import Context
from msd_tf.threats import NORMS

AUTOATTACK = "pyautoattack==0.2.0, version standard"  # what scripts/compare_autoattack runs
SEED = 0
FORMAT = 1


def comparison_key(unit_key: str, result: dict) -> str:
    """What a comparison depends on: the unit, the model's committed per-digit robust
    flags (another training or evaluation of the same recipe changes them), AutoAttack."""
    return fingerprints.of_json({"format": FORMAT, "unit": unit_key,
                                 "ours": result["robust"], "autoattack": AUTOATTACK,
                                 "seed": SEED, "eval_split": result["eval_split"],
                                 "num_examples": result["num_examples"]})


def _flags_on_disk(unit, ctx: Context, description: dict) -> dict | None:
    """The per-digit robust flags of the unit's evaluation on disk (as a result keeps
    them), or None if its model or its evaluation is not there."""
    from msd_tf.evaluation import compare

    folder, evaluated = units.run_dir(unit, ctx, description), \
        units.eval_dir(unit, ctx, description)
    if not (os.path.exists(os.path.join(folder, "saved_model"))
            and os.path.exists(os.path.join(evaluated, "results.json"))):
        return None
    try:
        (flags,) = compare.robust_flags(evaluated).values()
    except (compare.CompareError, ValueError):
        return None
    return units.robust_strings(flags)


def produce(bench: tables.Benchmark, ctx: Context, names: list[str] | None,
            compare_flags: tuple[str, ...] = ()) -> dict:
    """{unit: comparison result}: committed and current, else run now (the unit's model
    trained again first if it is not on disk). `compare_flags` go to
    scripts/compare_autoattack.py (e.g. `--torch_python=...`).

    Raises:
      runs.BenchmarkError: a failed step, unreadable output, a fine-tuned unit.
    """
    unit_ctx = dataclasses.replace(ctx, tag="")  # the units' own results
    chosen = tables.select(bench, names)
    tuned = [u.name for u in chosen if u.init_from]
    if tuned:
        raise runs.BenchmarkError(f"{tuned} fine-tune other models: the AutoAttack "
                                  "comparison takes models trained from scratch.")
    results = tables.produce(bench, unit_ctx, names)
    out = {}
    for unit in chosen:
        description = units.describe(unit, unit_ctx)
        result = results.get(unit.name)
        if ctx.dry_run and result is None:  # to be trained: its comparison runs after
            _compare(unit, unit_ctx, description, None, compare_flags, dry_run=True)
            continue
        key = comparison_key(units.key_of(description), result)
        path = units.result_path(unit, ctx)
        committed, why = units.load_keyed(path, key, "no comparison",
                                          "another model, evaluation or AutoAttack")
        if committed is not None:
            print(f"{unit.label}: committed comparison {path} (key {key[:10]})", flush=True)
            out[unit.name] = committed
            continue
        print(f"{unit.label}: {why}; running AutoAttack", flush=True)
        if _flags_on_disk(unit, unit_ctx, description) != result["robust"]:
            print(f"  {unit.label}'s model or its evaluation is not on disk: training and "
                  "evaluating it again", flush=True)
            if ctx.dry_run:
                tables.produce(bench, unit_ctx, [unit.name], refresh=frozenset([unit.name]))
                _compare(unit, unit_ctx, description, None, compare_flags, dry_run=True)
                continue
            old = result
            result = tables.produce(bench, unit_ctx, [unit.name],
                                    refresh=frozenset([unit.name]))[unit.name]
            if result["robust"] != old["robust"]:
                print(f"note: {units.result_path(unit, unit_ctx)} now holds the model trained "
                      f"again (union {old['accuracy']['union']} -> "
                      f"{result['accuracy']['union']}); the tables that show it are "
                      "refreshed by `reproduce --committed_only --table=<table>`.", flush=True)
            key = comparison_key(units.key_of(description), result)
        elif ctx.dry_run:
            _compare(unit, unit_ctx, description, result, compare_flags, key=key, dry_run=True)
            continue
        out[unit.name] = _compare(unit, unit_ctx, description, result, compare_flags,
                                  key=key)
        units.save_result(out[unit.name], path)
    return out


def _compare(unit, ctx: Context, description: dict, result: dict | None,
             compare_flags: tuple[str, ...], key: str = "", dry_run: bool = False):
    folder = units.run_dir(unit, ctx, description)
    split = description["eval_split"]
    n = (result or {}).get("num_examples") or description["num_examples"]
    saved = os.path.join(folder, "saved_model")
    weights = fingerprints.of_saved_model(saved)[:10] if os.path.exists(saved) else "new"
    out = os.path.join(folder, f"autoattack-{key[:10]}-{weights}")  # AutoAttack's own, per
    # evaluation and model: a killed run continues only on the same weights
    seconds = runs.run("scripts.compare_autoattack", [
        f"--model={os.path.join(folder, 'saved_model')}",
        f"--ours={units.eval_dir(unit, ctx, description)}", f"--split={split}",
        f"--num_examples={n}", f"--seed={SEED}", f"--output_dir={out}",
        *([f"--data_dir={ctx.data_dir}"] if ctx.data_dir else []), *compare_flags],
        out + ".log", dry_run=dry_run)
    if dry_run:
        return None
    try:
        return collect(unit, key, result, out, seconds)
    except (OSError, ValueError, KeyError) as e:
        raise runs.BenchmarkError(f"{unit.name}: the comparison in {out} is unreadable "
                                  f"({e}); delete that folder and run the same command "
                                  "again.") from e


def collect(unit, key: str, result: dict, folder: str, seconds: float) -> dict:
    """The comparison result from compare_autoattack's output folder."""
    import numpy as np

    with open(os.path.join(folder, "comparison.json")) as f:
        comparison = json.load(f)
    with np.load(os.path.join(folder, "autoattack.npz")) as f:
        aa = {k: f[k] for k in f.files}
    robust, union = {}, aa["clean"].astype(bool)
    for norm in comparison["norms"]:
        last = str(aa[f"attacks_{norm}"][-1])
        flags = aa[f"robust_{norm}_{last}"].astype(bool)
        robust[norm] = units.bits(flags)
        union &= flags
    robust["union"] = units.bits(union)
    pct = lambda v: None if v is None else round(100.0 * v, 1)  # noqa: E731
    norms = {}
    for norm, row in comparison["norms"].items():
        norms[norm] = {"ours": pct(row.get("ours")), "autoattack": pct(row["autoattack"]),
                       "after_each": {a: pct(v) for a, v in row["after_each"].items()},
                       "seconds": row["seconds"],
                       "robust_ours_broken_aa": row.get("robust_ours_broken_aa"),
                       "robust_aa_broken_ours": row.get("robust_aa_broken_ours"),
                       "unverified_breaks": row["unverified_breaks"]}
    u = comparison["union"]
    return {
        "name": unit.name, "label": unit.label, "key": key, "autoattack": AUTOATTACK,
        "seed": SEED, "eval_split": result["eval_split"],
        "model_sha256": fingerprints.of_saved_model(comparison["model"]),
        "num_examples": result["num_examples"], "radii": comparison["radii"],
        "max_logit_diff": comparison["max_logit_diff"], "norms": norms,
        "union": {"ours": pct(u.get("ours")), "autoattack": pct(u["autoattack"]),
                  "robust_ours_broken_aa": u.get("robust_ours_broken_aa"),
                  "robust_aa_broken_ours": u.get("robust_aa_broken_ours")},
        "robust_autoattack": robust,
        "seconds": {"autoattack": round(sum(sum(r["seconds"].values())
                                            for r in norms.values()), 1),
                    "autoattack_wall": round(seconds, 1),
                    "ours": result["seconds"].get("evaluate")},
        "machine": machine.describe(), "ours_machine": result.get("eval_machine"),
        "ours_date": result.get("date"), "git_commit": fingerprints.git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }


def report(bench: tables.Benchmark, comparisons: dict) -> tuple[list[str], dict]:
    """Ours beside AutoAttack per norm and union, with where each number comes from."""
    lines = [f"# Our evaluation against the original AutoAttack, budget {bench.scale}", "",
             f"{bench.note}. Ours: `{' '.join(bench.evaluation)}`; AutoAttack: "
             f"{AUTOATTACK} (APGD-CE, APGD-T, FAB-T, Square per norm) on a PyTorch port of "
             "the same model, every AutoAttack example re-checked by our model inside ball "
             "and box (`scripts/compare_autoattack.py`).", ""]
    for c in comparisons.values():
        lines += [f"## {c['label']}", "",
                  "| threat (radius) | ours | AutoAttack | robust for ours, broken by AA | "
                  "robust for AA, broken by ours | AutoAttack, robust after each attack |",
                  "|---" * 6 + "|"]
        for norm in NORMS:
            r = c["norms"].get(norm)
            if r is None:
                continue
            steps = ", ".join(f"{a} {v:.1f} ({r['seconds'][a]:.0f} s)"
                              for a, v in r["after_each"].items())
            lines.append(f"| {reports.HEAD[norm]} ({c['radii'][norm]:g}) | "
                         f"{reports.cell(r['ours'])} | {reports.cell(r['autoattack'])} | "
                         f"{r['robust_ours_broken_aa']} | {r['robust_aa_broken_ours']} | "
                         f"{steps} |")
        u = c["union"]
        lines += [f"| union | {reports.cell(u['ours'])} | {reports.cell(u['autoattack'])} | "
                  f"{u['robust_ours_broken_aa']} | {u['robust_aa_broken_ours']} | |", "",
                  f"{c['num_examples']} digits of {c['eval_split']}. AutoAttack: "
                  f"{c['seconds']['autoattack'] / 60:.1f} min of attacks on {c['machine']}, "
                  f"commit {c['git_commit']}, {c['date']}. Ours: "
                  f"{(c['seconds']['ours'] or 0) / 60:.1f} min on {c['ours_machine']}, "
                  f"{c['ours_date']}. Largest logit difference TensorFlow / PyTorch: "
                  f"{c['max_logit_diff']:.2g}.", ""]
    data = {"comparisons": {n: {k: v for k, v in c.items() if k != "robust_autoattack"}
                            for n, c in comparisons.items()}}
    return lines, data


def write(bench: tables.Benchmark, comparisons: dict, out: str) -> dict:
    """`<out>/autoattack_<scale>.md/.json`; returns their paths."""
    lines, data = report(bench, comparisons)
    data.update(table=bench.table, scale=bench.scale, note=bench.note)
    os.makedirs(out, exist_ok=True)
    paths = {"md": os.path.join(out, f"autoattack_{bench.scale}.md"),
             "json": os.path.join(out, f"autoattack_{bench.scale}.json")}
    with open(paths["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["json"], "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return paths
