"""The compute-matched union benchmark on CIFAR-10 for a GPU: `python -m msd_tf.reproduce
--table=union --scale=paper` (MNIST at budgets S and M: `msd_tf.benchmarks`).

Every union trainer gets the same training compute, counted in example-passes of the
model (forward + backward, x batch size; `compute.py`), the unit that does not depend on
the machine:

1. **Plan** (`plan.json`, written once, reused on every resumption while the recipes'
   flags and flagfile contents are the same, `recipe_key`): `recipe_cost`
   gives each recipe's passes per training example and step when no attack stops early
   (`budgets.step_cost`); the budget is the reference recipe's (MSD: its epochs x its
   step cost); a method with `share` s of
   the budget trains round(s x budget / its step cost) epochs, its learning-rate knots
   scaled to them
   (warm-up over `warmup` of the epochs, then linear decay to 0).
   Fine-tuned methods start from the P_inf run of the plan, trained on the rest of the
   budget, so "from P_inf" costs P_inf plus the fine-tuning; both are in the table.
2. **Train** each method with `msd_tf.main` (its flagfile, the planned epochs): one run
   folder each, reused when finished, resumed when killed.
3. **Evaluate** all of them with the scale's strong suite (`msd_tf.evaluate`, one cache
   keyed by content) on digits never trained on.
4. **Report** `union.md` / `union.json` / `union.png`: clean, per-norm and union robust
   accuracy, the measured compute of each run (its `summary.json`, which counts what
   training did: attacks that stop early make it lower than the plan), its ratio to the
   budget (per example x the examples of an epoch), epochs and wall time; the figure
   plots union robust accuracy against compute.
"""

import dataclasses
import hashlib
import json
import os

from msd_tf import cli
from msd_tf.benchmarks.runs import BenchmarkError

HEAD = {"clean": "clean", "linf": "l_inf", "l2": "l_2", "l1": "l_1", "all": "union"}


@dataclasses.dataclass(frozen=True)
class Method:
    """One row of the benchmark.

    Attributes:
      name: its run folder under the benchmark's output.
      label: its name in the table.
      flags: `msd_tf.main` flags of its recipe (the epochs and learning-rate knots are
        planned; everything else is the recipe's).
      share: the fraction of the budget its own training gets.
      warmup: the fraction of its epochs with a rising learning rate (then a linear decay
        to 0: three knots); None: the recipe's own knots, scaled to the planned epochs.
      init_from: the method whose SavedModel it fine-tunes (None: from scratch).
    """

    name: str
    label: str
    flags: tuple[str, ...]
    share: float = 1.0
    warmup: float | None = 0.4
    init_from: str | None = None


# P_inf gets two thirds of the budget, so that it plus a fine-tuning costs one budget.
PRETRAIN_SHARE = 2 / 3

METHODS = {
    "paper": (  # CIFAR-10 at Table 4's radii, for a GPU (the recipes' own schedules)
        *(Method(n, label, (f"--flagfile=flags/cifar10/{n}.cfg",), warmup=None)
          for n, label in (("msd", "MSD"), ("max", "MAX"), ("avg", "AVG"), ("eat", "E-AT"),
                           ("ramp", "RAMP"))),
        Method("linf", "P_inf (pre-training)", ("--flagfile=flags/cifar10/linf.cfg",),
               share=PRETRAIN_SHARE, warmup=None),
        *(Method(f"finetune_{n}", f"P_inf + {label}", (f"--flagfile=flags/cifar10/"
                                                       f"finetune_{n}.cfg",),
                 share=1 - PRETRAIN_SHARE, warmup=None, init_from="linf")
          for n, label in (("eat", "E-AT"), ("ramp", "RAMP"))),
    ),
}
REFERENCE = "msd"  # the budget where BUDGETS names none: this method's recipe as it stands
# Passes per training example where a scale fixes them (none: the reference's recipe).
BUDGETS = {}


def recipe_key(flags) -> str:
    """SHA-256 of a recipe's flags with every flagfile replaced by its lines, nested ones
    too (`cli.expand_flagfiles`: found as the commands find them, comments dropped), so
    that a plan made for a flagfile that has changed since is not taken for this one's.
    A flagfile that cannot be read keys by its error."""
    try:
        expanded = cli.expand_flagfiles(list(flags))
    except (FileNotFoundError, ValueError) as e:
        expanded = [*flags, f"<unreadable: {e}>"]
    return hashlib.sha256(json.dumps(expanded).encode()).hexdigest()


def recipe_cost(flags: list[str], what: str) -> dict:
    """A recipe's {"epochs", "lr_epochs", "forward", "backward", "passes"}: its flags'
    epochs and knots, and its passes per example and step (`budgets.step_cost`),
    computed in this process.

    Raises:
      BenchmarkError: the recipe is refused (a missing flagfile, a bad flag), naming `what`.
    """
    from msd_tf.benchmarks import budgets
    from msd_tf.flags import parse_config

    try:
        config = parse_config(list(flags))
    except ValueError as e:
        raise BenchmarkError(f"{what}: {e}") from e
    return {"epochs": config.epochs, "lr_epochs": list(config.lr_epochs),
            **budgets.step_cost(config)}


def changed_recipes(plan: dict, recipes: dict) -> list[str]:
    """The methods of `recipes` ({name: flags}) that `plan` has, planned for other flags or
    for flagfiles whose content has changed since (a plan written before `recipe_keys`
    existed: the flags alone)."""
    keys = plan.get("recipe_keys", {})
    return sorted(m for m in set(recipes) & set(plan["recipes"])
                  if plan["recipes"][m] != list(recipes[m])
                  or (m in keys and keys[m] != recipe_key(recipes[m])))


def plan_epochs(costs: dict, methods, reference: str = REFERENCE,
                budget: float | None = None) -> dict:
    """{method: {"epochs", "lr_epochs", "planned_passes_per_example", ...}} from each
    recipe's `--cost` ({"epochs", "lr_epochs", "passes"}: its flags' epochs and knots, its
    passes per example and step). The budget (passes per training example): `budget`,
    else the reference's epochs x its step cost."""
    if budget is None:
        budget = costs[reference]["epochs"] * costs[reference]["passes"]
    plan = {"budget_passes_per_example": budget}
    for m in methods:
        step = costs[m.name]["passes"]
        epochs = max(1, round(m.share * budget / step))
        plan[m.name] = {
            "epochs": epochs,
            "lr_epochs": ([0.0, round(m.warmup * epochs, 3), float(epochs)]
                          if m.warmup is not None else
                          [round(k * epochs / costs[m.name]["epochs"], 3)
                           for k in costs[m.name]["lr_epochs"]]),
            "planned_passes_per_example": epochs * step,
            "step_passes_per_example": step,
            "share": m.share,
        }
    return plan


def train_flags(method: Method, plan: dict, out: str) -> list[str]:
    """The `msd_tf.main` flags of `method` in the benchmark."""
    p = plan[method.name]
    flags = [*method.flags, f"--epochs={p['epochs']}",
             "--lr_epochs=" + ",".join(f"{v:g}" for v in p["lr_epochs"])]
    if method.init_from:
        flags.append(f"--init_from={os.path.join(out, method.init_from, 'saved_model')}")
    return flags


def _run_summary(out: str, name: str) -> dict:
    with open(os.path.join(out, name, "summary.json")) as f:
        return json.load(f)


def collect(out: str, methods, plan: dict, timings: dict) -> dict:
    """The table's numbers: the evaluation's results.json and each run's summary.json."""
    from msd_tf.benchmarks.reproduction import pct

    with open(os.path.join(out, "eval", "results.json")) as f:
        results = json.load(f)
    compute = {m.name: _run_summary(out, m.name)["compute"] for m in methods}
    # The budget in passes: per example x the examples of an epoch (summaries written
    # before `examples_per_epoch` existed: what the reference counted).
    per_epoch = compute[REFERENCE].get("examples_per_epoch")
    reference = (plan["budget_passes_per_example"] * per_epoch if per_epoch
                 else compute[REFERENCE]["passes"])
    rows = {}
    for m in methods:
        s = results["models"][m.name]
        own = compute[m.name]["passes"]
        total = own + (compute[m.init_from]["passes"] if m.init_from else 0)
        rows[m.name] = {
            "label": m.label, "from": m.init_from,
            "clean": pct(s["clean"]), "all": pct(s["all"]),
            **{n: pct(v["acc"]) for n, v in s["norms"].items()},
            "paper_attacks": {n: pct(v) for n, v in s["paper_only"].items()},
            "epochs": plan[m.name]["epochs"],
            "passes": own, "total_passes": total,
            "forward_examples": compute[m.name]["forward_examples"],
            "backward_examples": compute[m.name]["backward_examples"],
            "of_budget": round(total / reference, 3),
            "train_seconds": timings.get(f"train/{m.name}"),
        }
    prov = results["provenance"]
    return {"rows": rows, "budget_passes": reference, "plan": plan,
            "n": prov["num_examples"], "split": prov.get("split"),
            "suite": [a["name"] for a in results["suite"]], "radii": _radii(results),
            "machine": prov.get("machine"), "git_commit": prov.get("git_commit"),
            "timings": timings}


def _radii(results: dict) -> dict:
    first = next(iter(results["models"].values()))
    return {n: v["eps"] for n, v in first["norms"].items()}


def write(out: str, methods, plan: dict, timings: dict, note: str) -> dict:
    """Writes union.md / union.json / union.png; returns their paths."""
    from msd_tf import machine
    from msd_tf.benchmarks import reproduction

    data = collect(out, methods, plan, timings)
    data["note"] = note
    facts = data["machine"]
    cols = ["clean", *[n for n in ("linf", "l2", "l1") if n in data["radii"]], "all"]
    head = [f"{HEAD[c]} ({data['radii'][c]:g})" if c in data["radii"] else HEAD[c]
            for c in cols]
    lines = ["# Compute-matched union benchmark", "", f"Scale: {note}.", "",
             f"Budget: {data['budget_passes'] / 1e6:.2f} M example-passes (forward + "
             f"backward x batch): {data['plan']['budget_passes_per_example']:g} per training "
             f"example. Evaluation: "
             f"{data['n']} digits never trained on; attacks: {', '.join(data['suite'])}.", "",
             "| method | " + " | ".join(head) + " | epochs | passes (M) | of budget "
             "| training (min) |", "|---" * (len(cols) + 5) + "|"]
    for r in data["rows"].values():
        passes = f"{r['passes'] / 1e6:.2f}" + (
            f" + {(r['total_passes'] - r['passes']) / 1e6:.2f}" if r["from"] else "")
        minutes = "-" if r["train_seconds"] is None else f"{r['train_seconds'] / 60:.1f}"
        lines.append(f"| {r['label']} | " + " | ".join(
            "-" if r.get(c) is None else f"{r[c]:.1f}" for c in cols)
            + f" | {r['epochs']} | {passes} | {r['of_budget']:.2f} | {minutes} |")
    lines += ["", "Passes of a fine-tuned model: its fine-tuning + its P_inf pre-training; "
              "'of budget' counts both.", "", *reproduction.timing_lines(timings)]
    lines += ["", f"Machine: {machine.describe(facts) if facts else 'not recorded'}; "
              f"msd_tf git commit {data['git_commit']}."]
    return reproduction.save(out, "union", lines, data, lambda path: _plot(data, path))


def _plot(data: dict, path: str) -> None:
    """Union robust accuracy against training compute, one point per method (a
    fine-tuned one at its total, P_inf included)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in data["rows"].values():
        x = r["total_passes"] / data["budget_passes"]
        ax.scatter(x, r["all"], marker="s" if r["from"] else "o")
        ax.annotate(r["label"], (x, r["all"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training compute / budget (example-passes)")
    ax.set_ylabel("union robust accuracy (%)")
    ax.set_title(f"Union robustness per compute ({data['n']} digits)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_plan(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{path} is unreadable ({e}); delete it to plan again (the runs "
                             "stay).") from e
