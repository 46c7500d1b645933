"""The reports of `tables`' benchmarks: each table's Markdown and JSON beside the paper's
numbers, with every row's provenance, the filter images and the union-vs-compute figure,
written from the per-model results `tables.produce` returns."""

import json
import os

from msd_tf.benchmarks import paper, units
from msd_tf.benchmarks.tables import FIGURE_DIGITS, POINTWISE, TB19, Benchmark

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
    """Appendix E: each model's thresholding first-layer filters, beside its robustness on
    the first FIGURE_DIGITS digits (every model evaluated at least those)."""
    lines = [f"# First-layer filters at budget {bench.scale}", "", f"{bench.note}.", "",
             "A thresholding filter has one dominant weight: its second-largest |weight| is "
             f"below {FILTER_RATIO} x the largest (`msd_tf/evaluation/filters.py`). Images: "
             f"`filters/{bench.scale}/<model>.png`.", "",
             f"Robust accuracy (%) on the first {FIGURE_DIGITS} digits of the split, for every "
             "model: under the strong suite (read from each result's per-digit flags; Table "
             "3's models were evaluated on 1000, `table3_S.md`), then under foolbox's Pointwise "
             "attack alone (decision-based; `flags/mnist/eval_pointwise.cfg`).", "",
             "| model | alpha_inf | thresholding filters | " + " | ".join(
                 HEAD[c] for c in COLS) + " | Pointwise l_2 | Pointwise l_1 |",
             "|---" * (len(COLS) + 5) + "|"]
    rows, stale = {}, []
    for name, r in results.items():
        fl = r.get("first_layer") or {}
        alpha = next((t["alpha"] for t in r.get("threats") or [] if t["norm"] == "linf"),
                     None)
        flags = _first_digits(r, FIGURE_DIGITS) or {}
        strong = {c: _share(flags[c]) if c in flags else None for c in COLS}
        pointwise = _pointwise(r)
        rows[name] = {"label": r["label"], "thresholding": fl.get("thresholding"),
                      "filters": fl.get("filters"), "linf_alpha": alpha,
                      "accuracy": strong, "digits": FIGURE_DIGITS, "pointwise": pointwise}
        count = "-" if fl.get("thresholding") is None else \
            f"{fl['thresholding']} of {fl['filters']}"
        if pointwise and pointwise.get("other_model"):
            stale.append(r["label"])
        decision = [cell((pointwise or {}).get(n)) for n in ("l2", "l1")]
        if pointwise and not pointwise.get("other_model") and not pointwise["same_digits"]:
            decision = [f"{d} (other digits: first {pointwise['digits']} of "
                        f"{pointwise['split']})" for d in decision]
        lines.append(f"| {r['label']} | {'-' if alpha is None else f'{alpha:g}'} | {count} | "
                     + " | ".join(cell(strong[c]) for c in COLS) + " | "
                     + " | ".join(decision) + " |")
    if stale:
        lines += ["", f"Pointwise result of another training of the same recipe, not shown: "
                  f"{', '.join(stale)} (delete its `<model>{POINTWISE[0]}.json` and run the "
                  "command again)."]
    return lines, {"rows": rows}


def _joined(result: dict, other: dict) -> tuple[dict | None, str | None]:
    """(`result`'s per-digit flags on the digits `other` evaluated, None) when the two
    evaluations of one unit can be joined digit by digit; else (None, why not: another
    training, other digits, other radii, or flags missing)."""
    if units.same_model(result, other) is False:
        return None, "the strong suite's result measured another training of the recipe"
    strong = _on_the_same_digits(result, other) if other.get("robust") else None
    if strong is None:
        return None, "the strong suite's result does not hold the per-digit flags of those digits"
    if result.get("radii") != other.get("radii"):
        return None, (f"the two evaluations used other radii ({result.get('radii')} against "
                      f"{other.get('radii')})")
    return strong, None


def _first_digits(result: dict, digits: int) -> dict | None:
    """{threat: bits} of the result's first `digits` per-digit flags (None if it keeps
    fewer)."""
    flags = result.get("robust")
    if not flags or any(len(bits) < digits for bits in flags.values()):
        return None
    return {threat: bits[:digits] for threat, bits in flags.items()}


def _pointwise(result: dict) -> dict | None:
    """The Pointwise evaluation joined to `result` (None without one): its l_2 and l_1
    robust accuracy, how many digits it attacked (the first of the same split), and the
    strong suite's accuracy on those digits, from the result's per-digit flags."""
    other = result.get("also", {}).get(POINTWISE[0])
    if not other:
        return None
    digits = other["num_examples"]
    if units.same_model(result, other) is False:  # retrained (elsewhere) since: not comparable
        return {"digits": digits, "other_model": True,
                **{k: None for k in ("l2", "l1", "strong_l2", "strong_l1")}}
    strong = _on_the_same_digits(result, other) or {}
    out = {"digits": digits, "split": other.get("eval_split"),
           "same_digits": digits == FIGURE_DIGITS and other.get("eval_split")
           == result.get("eval_split")}
    for norm in ("l2", "l1"):
        out[norm] = other["accuracy"].get(norm)
        out["strong_" + norm] = _share(strong[norm]) if norm in strong else None
    return out


def _on_the_same_digits(result: dict, other: dict) -> dict | None:
    """`result`'s per-digit flags on the digits `other` evaluated ({threat: bits}), where
    `other` attacked the first digits of the same split; None if it did not, or if either
    result keeps too few flags."""
    if other.get("eval_split") != result.get("eval_split"):
        return None
    return _first_digits(result, other["num_examples"])


def _share(bits: str) -> float:
    """The percentage of `1`s among per-digit flags, to one decimal."""
    return round(100.0 * bits.count("1") / len(bits), 1)


def _both(a: str, b: str) -> str:
    """Per-digit flags robust under two evaluations: robust under each."""
    return "".join("1" if x == y == "1" else "0" for x, y in zip(a, b))


def table5(bench: Benchmark, results: dict) -> tuple[list[str], dict]:
    """Table 5: MSD under Tramer and Boneh's evaluation (the `.tb19` result), the strong
    suite (the main result) on the same digits and both together, beside the paper's
    column; and the digits their attacks break that the strong suite left robust."""
    theirs = {("union" if k == "all" else k): v for k, v in paper.TABLE_5["msd"].items()}
    lines = [f"# Table 5 at budget {bench.scale}", "", f"{bench.note}.", "",
             "Robust accuracy (%) on the digits Tramer and Boneh's evaluation attacked (the "
             "first of the split): under their attacks, under the strong suite "
             "(`flags/mnist/eval_benchmark.cfg`, Table 3's result of the same model) and "
             "under both (a digit counts as robust only if neither breaks it).", "",
             "| model | attacks | digits | " + " | ".join(HEAD[c] for c in COLS) + " |",
             "|---" * (len(COLS) + 3) + "|"]
    rows, notes = {}, []
    for name, r in results.items():
        tb = r.get("also", {}).get(TB19[0])
        if not tb:
            continue
        digits, label = tb["num_examples"], r["label"]
        row = rows[name] = {"label": label, "digits": digits,
                            "tb19": {c: tb["accuracy"].get(c) for c in COLS}}
        strong, why_not = _joined(r, tb)
        if why_not is None:
            theirs_flags = tb["robust"]
            row["strong"] = {c: _share(strong[c]) for c in COLS}
            row["both"] = {c: _share(_both(strong[c], theirs_flags[c])) for c in COLS}
            row["broken_only_by_tb19"] = {
                c: [i for i, (s, t) in enumerate(zip(strong[c], theirs_flags[c]))
                    if s == "1" and t == "0"] for c in COLS[1:]}
        else:
            notes.append(f"{label}: {why_not}; only Tramer and Boneh's rows are shown.")
        for key, what in (("tb19", "Tramer and Boneh's"), ("strong", "strong suite"),
                          ("both", "both")):
            if key in row:
                lines.append(f"| {label} (ours) | {what} | {digits} | "
                             + " | ".join(cell(row[key].get(c)) for c in COLS) + " |")
    lines.append("| MSD (paper) | Tramer and Boneh's | - | "
                 + " | ".join(cell(theirs.get(c)) for c in COLS) + " |")
    for row in rows.values():
        if "broken_only_by_tb19" in row:
            found = "; ".join(f"{HEAD[c]} {len(ix)}" + (f" (test indices {' '.join(map(str, ix))})"
                                                         if ix else "")
                              for c, ix in row["broken_only_by_tb19"].items())
            lines += ["", f"{row['label']}: digits Tramer and Boneh's attacks break that the "
                      f"strong suite leaves robust: {found}."]
    lines += [""] + notes if notes else []
    return lines, {"paper": theirs, "rows": rows}


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
    for tag, _ in bench.also:
        theirs = {tuple(r["also"][tag]["suite"]) for r in results.values()
                  if tag in r.get("also", {})}
        if theirs:
            attacks += f"; evaluated again ({tag[1:]}): " + "; ".join(
                ", ".join(s) for s in sorted(theirs))
    lines += ["", f"Attacks: {attacks}.", "",
              "## Where each number comes from", "",
              f"Each row is a committed per-model result under `{bench.scale}/` (command: "
              f"`python -m msd_tf.reproduce --table={bench.table} --scale={bench.scale} "
              "--data_dir=../shared/data/mnist`).", "", *_provenance(results)]
    for tag, evaluation in bench.also:
        measured = {n: r["also"][tag] for n, r in results.items() if tag in r.get("also", {})}
        lines += ["", f"Evaluated again by `{' '.join(evaluation)}` (results "
                  f"`<model>{tag}.json`):", ""]
        lines += _provenance(measured) if measured else ["none yet."]
    missing = [u.label for u in bench.units if u.name not in results]
    missing += [f"{u.label} ({tag[1:]})" for tag, _ in bench.also for u in bench.units
                if u.name in results and tag not in results[u.name].get("also", {})]
    if missing:
        lines += ["", f"Not measured yet: {', '.join(missing)} (the command above trains "
                  "and evaluates them)."]
    data.update(table=bench.table, scale=bench.scale, note=bench.note, budget=bench.budget,
                results={n: _without_flags(r) for n, r in results.items()})
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


def _without_flags(result: dict) -> dict:
    """A result for a table's JSON: without its per-digit flags (its own file keeps them),
    nor those of the further evaluations under "also"."""
    out = {k: v for k, v in result.items() if k != "robust"}
    if "also" in out:  # nor the first layer twice
        out["also"] = {tag: {k: v for k, v in _without_flags(r).items() if k != "first_layer"}
                       for tag, r in out["also"].items()}
    return out


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
                                 title=r["label"])
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
    from matplotlib import ticker

    from msd_tf.benchmarks import budgets

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in sorted(methods.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=label)
    # Both budgets on the axis, whichever have points: a curve reads against them, and the
    # log axis never spans less than a decade (its tick labels would collide).
    marks = {name: passes / 1e6 for name, passes in budgets.BUDGETS.items()}
    for name, x in marks.items():
        ax.axvline(x, color="grey", lw=0.8, ls=":")
        ax.annotate(f"budget {name}", (x, 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -12), textcoords="offset points", fontsize=8, color="grey")
    every = [x for points in methods.values() for x, _ in points] + list(marks.values())
    ax.set_xscale("log")
    ax.set_xlim(min(every) / 1.5, max(every) * 1.5)
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("training compute (M example-passes)")
    ax.set_ylabel("union robust accuracy (%)")
    ax.set_title("Union robustness per compute (first 1000 test digits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return methods
