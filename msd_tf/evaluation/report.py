"""Report files of an evaluation: Markdown, JSON, CSV, per-example npz, PNG. The
numbers they hold come from `aggregate.py` (pure, no files)."""

import csv
import json
import os

import numpy as np

from msd_tf.evaluation.checks import within

NORM_NAMES = {"linf": "l_inf", "l2": "l_2", "l1": "l_1"}


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
            rows.append((f"Broken only by the added attacks ({label})",
                         [s["broken_only_by_added"].get(key) for s in summaries.values()]))
    return rows


def results_markdown(summaries: dict, warnings: dict | None = None) -> str:
    """results.md: the warnings (model -> list), then one row per attack, threat model
    and "all attacks", one column per model, and what ran."""
    models = list(summaries)
    fmt = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = [f"> **WARNING [{m}]: {w}** (the numbers below may not be trustworthy)"
             for m, ws in (warnings or {}).items() for w in ws]
    lines += [""] if lines else []
    lines += ["| attack (threat model, radius) | " + " | ".join(models) + " |",
              "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(fmt(v) for v in values) + " |"
              for label, values in _rows(summaries)]
    n = next(iter(summaries.values()))["n"]
    rejected = {m: sum(a["rejected"] for a in s["attacks"].values())
                for m, s in summaries.items()}
    lines += ["", f"Robust accuracy in % on {n} examples. Attacks that ran: "
              + ", ".join(next(iter(summaries.values()))["ran"]) + ".",
              "Results rejected by the soundness check (not counted): "
              + ", ".join(f"{m}: {r}" for m, r in rejected.items()) + "."]
    return "\n".join(lines) + "\n"


def write_reports(summaries: dict, output_dir: str, *, extra: dict | None = None) -> dict:
    """Writes results.md, results.json and results.csv for one or more models.

    Args:
      summaries: model name -> `aggregate` output (same suite for every model).
      extra: more JSON fields (provenance, warnings). `extra["warnings"]` (model ->
        list of `checks.sanity_warnings`) also opens results.md, one line each.

    Returns:
      The paths written.
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {"md": os.path.join(output_dir, "results.md"),
             "json": os.path.join(output_dir, "results.json"),
             "csv": os.path.join(output_dir, "results.csv")}
    with open(paths["md"], "w") as f:
        f.write(results_markdown(summaries, (extra or {}).get("warnings")))
    with open(paths["json"], "w") as f:
        json.dump({"models": summaries, **(extra or {})}, f, indent=2)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", *summaries])
        for label, values in _rows(summaries):
            w.writerow([label, *["" if v is None else f"{v:.4f}" for v in values]])
    return paths


def save_per_example(path: str, clean: np.ndarray, records: dict,
                     example_keys: np.ndarray | None = None) -> None:
    """Per-example results: clean flag, per attack sound / norm / rejected, and (if given)
    a content key per example (`example_keys`, to check later use is on the same data)."""
    arrays = {"clean": clean}
    if example_keys is not None:
        arrays["example_key"] = np.asarray(example_keys)
    for name, rec in records.items():
        arrays[f"{name}/sound"] = rec.sound
        arrays[f"{name}/norm"] = rec.norms
        arrays[f"{name}/rejected"] = rec.rejected
    np.savez_compressed(path, **arrays)


def plot_curves(curves: dict, path: str) -> dict:
    """One panel per norm, drawing only what was measured.

    Args:
      curves: norm -> {"radii", "eps", "models": model -> {"curve", "at_eps"}}:
        `curve` is the accuracy against the minimization attacks at every radius (NaN
        where there are none), `at_eps` the accuracy against all attacks of the norm
        at its radius (fixed-radius attacks measure only there: one point).

    Returns:
      (norm, model) -> [(legend label, x data, y data)] of what was drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    drawn = {}
    for ax, (norm, panel) in zip(axes[0], curves.items()):
        for i, (model, m) in enumerate(panel["models"].items()):
            color = f"C{i % 10}"
            acc = 100 * np.asarray(m["curve"], float)
            lines = ax.plot([panel["eps"]], [100 * m["at_eps"]], "o", color=color,
                            label=f"{model}: all attacks at eps (fixed radius)")
            if np.isfinite(acc).any():
                lines += ax.plot(panel["radii"], acc, color=color,
                                 label=f"{model}: minimum-norm attacks (any radius)")
            drawn[(norm, model)] = [(line.get_label(), np.asarray(line.get_xdata()),
                                     np.asarray(line.get_ydata())) for line in lines]
        ax.axvline(panel["eps"], color="gray", ls="--", lw=1)
        ax.set_xlabel(f"{NORM_NAMES[norm]} radius")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"{NORM_NAMES[norm]} attacks")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def example_title(norm: str, value: float, eps: float, prediction: int) -> tuple[str, str]:
    """Title and color of an adversarial example in the grid: its norm against the
    radius, and its predicted class; red (and ">") when it lies beyond the radius."""
    beyond = not within(value, eps)
    return (f"{NORM_NAMES[norm]} {value:.3g} {'>' if beyond else '<='} eps {eps:g}\n"
            f"pred {int(prediction)}", "red" if beyond else "black")


def plot_examples(x: np.ndarray, y: np.ndarray, adversarial: dict, path: str, *,
                  eps: dict, predictions: dict) -> None:
    """A grid: each row a clean image, then per threat model its smallest adversarial
    example and the perturbation magnified to the full gray range (blank where none
    was found). Titles give the example's norm and predicted class; examples beyond
    the threat model's radius (found by minimization attacks) are titled in red with
    "> eps": they are not counted against the model at that radius.

    Args:
      adversarial: norm -> (`[K, ...]` images, `[K]` bool found, `[K]` norms).
      eps: norm -> radius.
      predictions: norm -> `[K]` predicted classes of the adversarial images.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(x)
    cols = 1 + 2 * len(adversarial)
    fig, axes = plt.subplots(k, cols, figsize=(1.8 * cols, 1.8 * k), squeeze=False)

    def show(ax, img, title=None, color="black"):
        img = np.clip(img, 0, 1)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        if title:
            ax.set_title(title, fontsize=6, color=color)

    for i in range(k):
        show(axes[i, 0], x[i], f"clean, y={y[i]}" if i == 0 else f"y={y[i]}")
        for j, (norm, (imgs, found, norms)) in enumerate(adversarial.items()):
            a, b = axes[i, 1 + 2 * j], axes[i, 2 + 2 * j]
            if found[i]:
                d = imgs[i] - x[i]
                scale = np.abs(d).max() or 1.0
                show(a, imgs[i], *example_title(norm, norms[i], eps[norm], predictions[norm][i]))
                show(b, 0.5 + 0.5 * d / scale, "perturbation")
            else:
                a.axis("off")
                b.axis("off")
                a.set_title(f"{NORM_NAMES[norm]}: none", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
