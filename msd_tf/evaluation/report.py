"""Aggregation (PAPER_NOTES section 7) and report files: Markdown, JSON, CSV, npz, PNG.

An example is robust for a threat model when it is correctly classified and every
attack of that model fails on it; "all attacks" requires every attack of every
model to fail (a per-example worst case, not an average of rows).
"""

import csv
import json
import os

import numpy as np

from msd_tf.evaluation.checks import RTOL

NORM_NAMES = {"linf": "l_inf", "l2": "l_2", "l1": "l_1"}
ADDED_KINDS = ("apgd_ce", "apgd_t")  # the attacks --suite=strong adds to the paper's


def broken(record: dict) -> np.ndarray:
    """Examples a recorded attack broke at its radius."""
    return record["sound"] & (record["norms"] <= record["spec"].eps * (1 + RTOL))


def aggregate(clean: np.ndarray, records: dict) -> dict:
    """Per-attack, per-threat-model and all-attacks robust accuracy.

    Args:
      clean: `[N]` bool, correctly classified without attack.
      records: attack name -> {"spec", "sound", "norms", "rejected"} (`[N]` arrays).

    Returns:
      A JSON-ready dict: clean accuracy, per attack {label, norm, eps, acc, rejected,
      minimizes}, per norm {eps, acc, attacks}, `all` and the names that ran.
    """
    n = len(clean)
    out = {"n": n, "clean": float(clean.mean()) if n else 0.0, "attacks": {}, "norms": {},
           "ran": list(records)}
    any_broken = np.zeros(n, bool)
    per_norm = {}
    for name, rec in records.items():
        spec, b = rec["spec"], broken(rec)
        out["attacks"][name] = {
            "label": spec.label(), "norm": spec.norm, "eps": spec.eps,
            "acc": float((clean & ~b).mean()) if n else 0.0,
            "rejected": int(np.sum(rec["rejected"])), "minimizes": spec.minimizes}
        per_norm.setdefault(spec.norm, [np.zeros(n, bool), spec.eps, []])
        per_norm[spec.norm][0] |= b
        per_norm[spec.norm][2].append(name)
        any_broken |= b
    for norm in ("linf", "l2", "l1"):
        if norm in per_norm:
            b, eps, names = per_norm[norm]
            out["norms"][norm] = {"eps": eps, "acc": float((clean & ~b).mean()) if n else 0.0,
                                  "attacks": names}
    out["all"] = float((clean & ~any_broken).mean()) if n else 0.0
    added = [name for name, rec in records.items() if rec["spec"].kind in ADDED_KINDS]
    if added:
        # How much the paper's protocol overestimates robustness: examples that every
        # paper attack fails on but an added (APGD) attack breaks.
        out["broken_only_by_added"] = {}
        for norm in list(out["norms"]) + ["all"]:
            sel = [nm for nm, rec in records.items() if norm in ("all", rec["spec"].norm)]
            paper = np.zeros(n, bool)
            extra = np.zeros(n, bool)
            for nm in sel:
                (extra if nm in added else paper).__ior__(broken(records[nm]))
            out["broken_only_by_added"][norm] = float((clean & ~paper & extra).mean()) \
                if n else 0.0
    return out


def accuracy_at_radii(clean: np.ndarray, records: dict, norm: str, radii) -> np.ndarray:
    """Robust accuracy against the attacks of `norm` at each radius, from recorded norms.

    An example counts as broken at radius r if any attack of that norm found a sound
    adversarial example of norm <= r. Beyond a fixed-radius attack's own radius only
    the minimization attacks inform the curve.
    """
    norms = [rec["norms"] for rec in records.values() if rec["spec"].norm == norm]
    if not norms:
        return np.full(len(radii), np.nan)
    smallest = np.min(np.stack(norms), axis=0)
    return np.array([np.mean(clean & ~(smallest <= r * (1 + RTOL))) for r in radii])


def _rows(summaries: dict) -> list[tuple[str, list]]:
    """Table rows (label, value per model) in Table 3's order."""
    first = next(iter(summaries.values()))
    rows = [("Clean accuracy", [s["clean"] for s in summaries.values()])]
    for norm, info in first["norms"].items():
        for name in info["attacks"]:
            rows.append((first["attacks"][name]["label"],
                         [s["attacks"].get(name, {}).get("acc") for s in summaries.values()]))
        rows.append((f"All {NORM_NAMES[norm]} attacks (eps={info['eps']:g})",
                     [s["norms"].get(norm, {}).get("acc") for s in summaries.values()]))
    rows.append(("All attacks", [s["all"] for s in summaries.values()]))
    if "broken_only_by_added" in first:
        for key in first["broken_only_by_added"]:
            label = "all" if key == "all" else NORM_NAMES[key]
            rows.append((f"Broken only by the added APGD attacks ({label})",
                         [s["broken_only_by_added"].get(key) for s in summaries.values()]))
    return rows


def write_reports(summaries: dict, output_dir: str, *, extra: dict | None = None) -> dict:
    """Writes results.md, results.json and results.csv for one or more models.

    Args:
      summaries: model name -> `aggregate` output (same suite for every model).
      extra: more JSON fields (flags used, warnings).

    Returns:
      The paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    models = list(summaries)
    rows = _rows(summaries)
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = ["| attack (threat model, radius) | " + " | ".join(models) + " |",
             "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(fmt(v) for v in values) + " |"
              for label, values in rows]
    n = next(iter(summaries.values()))["n"]
    rejected = {m: sum(a["rejected"] for a in s["attacks"].values())
                for m, s in summaries.items()}
    lines += ["", f"Robust accuracy in % on {n} examples. Attacks that ran: "
              + ", ".join(next(iter(summaries.values()))["ran"]) + ".",
              "Results rejected by the soundness check (not counted): "
              + ", ".join(f"{m}: {r}" for m, r in rejected.items()) + "."]
    paths = {"md": os.path.join(output_dir, "results.md"),
             "json": os.path.join(output_dir, "results.json"),
             "csv": os.path.join(output_dir, "results.csv")}
    with open(paths["md"], "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(paths["json"], "w") as f:
        json.dump({"models": summaries, **(extra or {})}, f, indent=2)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", *models])
        for label, values in rows:
            w.writerow([label, *["" if v is None else f"{v:.4f}" for v in values]])
    return paths


def save_per_example(path: str, clean: np.ndarray, records: dict) -> None:
    """Per-example results: clean flag, and per attack sound / norm / rejected."""
    arrays = {"clean": clean}
    for name, rec in records.items():
        arrays[f"{name}/sound"] = rec["sound"]
        arrays[f"{name}/norm"] = rec["norms"]
        arrays[f"{name}/rejected"] = rec["rejected"]
    np.savez_compressed(path, **arrays)


def plot_curves(curves: dict, path: str) -> None:
    """curves: norm -> (radii, eps, {model: accuracies}); one panel per norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (norm, (radii, eps, per_model)) in zip(axes[0], curves.items()):
        for model, acc in per_model.items():
            ax.plot(radii, 100 * np.asarray(acc), label=model)
        ax.axvline(eps, color="gray", ls="--", lw=1)
        ax.set_xlabel(f"{NORM_NAMES[norm]} radius")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{NORM_NAMES[norm]} attacks")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_examples(x: np.ndarray, y: np.ndarray, adversarial: dict, path: str) -> None:
    """A grid: each row a clean image, then per threat model the adversarial image and
    its perturbation magnified to the full gray range (blank where none was found).

    Args:
      adversarial: norm -> (`[K, ...]` images, `[K]` bool found, `[K]` norms).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(x)
    cols = 1 + 2 * len(adversarial)
    fig, axes = plt.subplots(k, cols, figsize=(1.6 * cols, 1.6 * k), squeeze=False)

    def show(ax, img, title=None):
        img = np.clip(img, 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        if title:
            ax.set_title(title, fontsize=7)

    for i in range(k):
        show(axes[i, 0], x[i], f"clean, y={y[i]}" if i == 0 else f"y={y[i]}")
        for j, (norm, (imgs, found, norms)) in enumerate(adversarial.items()):
            a, b = axes[i, 1 + 2 * j], axes[i, 2 + 2 * j]
            if found[i]:
                d = imgs[i] - x[i]
                scale = np.abs(d).max() or 1.0
                show(a, imgs[i], f"{NORM_NAMES[norm]} {norms[i]:.2f}")
                show(b, 0.5 + 0.5 * d / scale, "perturbation")
            else:
                a.axis("off")
                b.axis("off")
                a.set_title(f"{NORM_NAMES[norm]}: none", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
