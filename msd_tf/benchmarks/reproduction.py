"""The reproduction report: our evaluation beside the paper's table (`msd_tf.reproduce`).

Reads `<out>/eval/results.json` and writes `table<N>.md`, `table<N>.json` and `table<N>.png`.
Every number of ours comes from those files; the paper's from `msd_tf.benchmarks.paper`.
"""

import json
import os

import numpy as np

from msd_tf import machine
from msd_tf.benchmarks import paper
from msd_tf.threats import NORMS

HEAD = {"clean": "clean", "linf": "l_inf", "l2": "l_2", "l1": "l_1", "all": "all"}


def pct(v):
    return None if v is None else round(100.0 * v, 1)


def collect(out: str, *, table: int, models: list[str]) -> dict:
    """Our numbers (from the evaluation files) beside the paper's, per model."""
    with open(os.path.join(out, "eval", "results.json")) as f:
        results = json.load(f)
    reference = paper.TABLES[table]
    rows = {}
    for m in models:
        s = results["models"][m]
        strong = {"clean": pct(s["clean"]), "all": pct(s["all"]),
                  **{n: pct(s["norms"][n]["acc"]) for n in NORMS if n in s["norms"]}}
        paper_only = s.get("paper_only", {})
        attacks_of_paper = {n: pct(paper_only.get(n)) for n in (*NORMS, "all")}
        theirs = reference.get(m)
        row = {"name": paper.MODEL_NAMES[m], "ours": strong,
               "ours_paper_attacks": attacks_of_paper,
               "lowered_by_added": {n: pct(v) for n, v in
                                    s.get("broken_only_by_added", {}).items()},
               "paper": theirs,
               "diff": {k: None if theirs is None or strong.get(k) is None
                        else round(strong[k] - theirs[k], 1) for k in paper.COLUMNS}}
        rows[m] = row
    prov = results["provenance"]
    return {"table": table, "n": prov["num_examples"], "split": prov["split"],
            "dataset": prov["dataset"], "suite": [a["name"] for a in results["suite"]],
            "radii": {n: results["models"][models[0]]["norms"][n]["eps"] for n in NORMS
                      if n in results["models"][models[0]]["norms"]},
            "rows": rows, "provenance": prov}


def _cell(ours, theirs, diff):
    if ours is None:
        return "-"
    if theirs is None:
        return f"{ours:.1f}"
    return f"{ours:.1f} ({theirs:.1f}, {diff:+.1f})"


def write(out: str, *, table: int, scale: str, note: str, models: list[str],
          timings: dict) -> dict:
    """Writes table<N>.md / .json / .png; returns their paths."""
    data = collect(out, table=table, models=models)
    # The machine the evaluation ran on (recorded by it; older results.json lack it).
    facts = data["provenance"].get("machine")
    data.update(scale=scale, note=note, timings=timings,
                machine=machine.describe(facts) if facts else "not recorded")
    radii = data["radii"]
    cols = ["clean", *[n for n in NORMS if n in radii], "all"]
    head = [f"{HEAD[c]} ({radii[c]:g})" if c in radii else HEAD[c] for c in cols]
    lines = [f"# Table {table} reproduced ({scale} scale)", "",
             f"Scale: {note}.", "",
             f"Evaluation: {data['n']} examples ({data['dataset']} {data['split']}, never "
             f"trained on); attacks: {', '.join(data['suite'])}.", "",
             "## Robust accuracy (%): ours with every attack (paper's number, difference)", "",
             "| model | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in models:
        r = data["rows"][m]
        theirs = r["paper"] or {}
        lines.append(f"| {r['name']} | " + " | ".join(
            _cell(r["ours"].get(c), theirs.get(c), r["diff"].get(c)) for c in cols) + " |")
    lines += ["", "## The paper's attacks alone, and what the added attacks (APGD-CE, APGD-T, "
              "Square / Sparse-RS) break beyond them (%)", "",
              "| model | " + " | ".join(f"{HEAD[c]}: paper's attacks / all / lowered by"
                                        for c in cols[1:]) + " |",
              "|---" * len(cols) + "|"]
    for m in models:
        r = data["rows"][m]
        cells = []
        for c in cols[1:]:
            p, a, low = (r["ours_paper_attacks"].get(c), r["ours"].get(c),
                         r["lowered_by_added"].get(c))
            cells.append("-" if p is None else f"{p:.1f} / {a:.1f} / {low:.1f}")
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    lines += ["", *timing_lines(timings)]
    prov = data["provenance"]
    lines += ["", f"Machine: {data['machine']}; msd_tf git commit {prov['git_commit']}; "
              f"TensorFlow {prov['versions'].get('tensorflow')}."]
    return save(out, f"table{table}", lines, data, lambda path: _plot(data, cols[1:], path))


def timing_lines(timings: dict) -> list[str]:
    """A report's run-time section: minutes per step and in all."""
    lines = ["## Run time (wall clock, accumulated over resumptions)", "",
             "| step | minutes |", "|---|---|"]
    lines += [f"| {key} | {seconds / 60:.1f} |" for key, seconds in timings.items()]
    return lines + [f"| total | {sum(timings.values()) / 60:.1f} |"]


def save(out: str, stem: str, lines: list[str], data: dict, plot) -> dict:
    """Writes `<stem>.md` (lines), `.json` (data) and `.png` (`plot(path)`) in `out`;
    returns their paths."""
    paths = {k: os.path.join(out, f"{stem}.{k}") for k in ("md", "json", "png")}
    with open(paths["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["json"], "w") as f:
        json.dump(data, f, indent=2)
    plot(paths["png"])
    return paths


def _plot(data: dict, cols: list[str], path: str) -> None:
    """Robust accuracy per model and threat model: ours (paper's attacks, every attack)
    beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    names = [r["name"] for r in rows.values()]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4), squeeze=False)
    x = np.arange(len(rows))
    for ax, c in zip(axes[0], cols):
        series = [("ours, paper's attacks", [r["ours_paper_attacks"].get(c) for r in
                                             rows.values()]),
                  ("ours, every attack", [r["ours"].get(c) for r in rows.values()]),
                  ("paper", [(r["paper"] or {}).get(c) for r in rows.values()])]
        for k, (label, values) in enumerate(series):
            heights = [np.nan if v is None else v for v in values]
            ax.bar(x + (k - 1) * 0.27, heights, 0.27, label=label)
        ax.set_xticks(x, names, rotation=45, fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_title(f"{HEAD[c]}" + (f" (eps {data['radii'][c]:g})" if c in data["radii"]
                                     else ""))
        ax.set_ylabel("robust accuracy (%)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
