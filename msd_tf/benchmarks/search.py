"""Recipe search on digits held out of the training split (`protocol.TUNING`).

    python -m msd_tf.tune --recipe=flags/mnist/S/msd.cfg --budget=S \
        --variant="k3=--msd_steps=3" --variant="lr2=--lr_values=0,2e-3,0" \
        --data_dir=../shared/data/mnist --output_dir=runs/tune/msd_S

Every variant is the recipe with the variant's flags after it, trained on `train[:55000]`
and evaluated on the first `num_examples` of `train[55000:]` (never a test digit:
`protocol.check_tuning` refuses a split that is). With a budget, a variant whose step
costs more or less than the recipe's (attack iterations, adversary) gets its epochs and
learning-rate knots re-cut so that it spends the same compute (`budgets.fit`); "base"
(the recipe alone) is always trained. `tune.md` / `tune.json` list the variants by union
robust accuracy with their counted compute; runs and the evaluation cache are reused when
the same command runs again.
"""

import dataclasses
import json
import os

from msd_tf import data, protocol
from msd_tf.benchmarks import budgets, runs

TUNE_ATTACKS = ("apgd_ce_linf", "apgd_t_linf", "apgd_ce_l2", "apgd_t_l2", "apgd_ce_l1",
                "apgd_t_l1")


# The paper's MNIST step-size search space (appendix C.2).
C2_GRID = {"l1_alpha": (0.75, 0.8, 1.0, 2.0), "l2_alpha": (0.1, 0.2),
           "linf_alpha": (0.01, 0.02, 0.03)}
GRIDS = {"c2": C2_GRID}


def grid_variants(grid: dict) -> dict:
    """{name: flags} for every combination of `grid`'s values, e.g.
    "l1_alpha0.75-l2_alpha0.1-linf_alpha0.01": ["--l1_alpha=0.75", ...]."""
    import itertools

    names = sorted(grid)
    return {"-".join(f"{n}{v:g}" for n, v in zip(names, values)):
            [f"--{n}={v:g}" for n, v in zip(names, values)]
            for values in itertools.product(*(grid[n] for n in names))}


@dataclasses.dataclass(frozen=True)
class Search:
    """A recipe search.

    Attributes:
      recipe: `msd_tf.main` flags of the recipe (a flagfile and overrides).
      variants: {name: extra flags}; "base" (no flags) is added.
      output_dir: run folders, the evaluation and tune.md.
      data_dir: offline data (None: tensorflow-datasets).
      budget: passes the recipe's share spends (None: each variant's own epochs).
      train_split, tune_split: the held-out protocol (checked).
      num_examples: tuning digits evaluated.
      attacks: the tuning evaluation's attacks (APGD-CE and APGD-T per norm: most of
        what the strong suite breaks, in a fraction of its time).
    """

    recipe: tuple[str, ...]
    variants: dict
    output_dir: str
    data_dir: str | None = None
    budget: float | None = None
    train_split: str = protocol.TUNING.train_split
    tune_split: str = protocol.TUNING.eval_split
    num_examples: int = 1000
    attacks: tuple[str, ...] = TUNE_ATTACKS
    dry_run: bool = False


def variant_flags(search: Search, extra: list[str]) -> list[str]:
    """The `msd_tf.main` flags of one variant (budget re-cut included)."""
    from msd_tf.flags import parse_config

    flags = [*search.recipe, *extra, f"--train_split={search.train_split}",
             *([f"--data_dir={search.data_dir}"] if search.data_dir else [])]
    if search.budget is None:
        return flags
    config = parse_config(flags)
    x, _ = data.load_arrays(config.dataset, config.train_split, config.data_dir)
    return flags + budgets.fit(config, search.budget, len(x))


def run(search: Search) -> list[dict]:
    """Trains and evaluates every variant; returns the rows of tune.md, best first.

    Raises:
      protocol.ProtocolError: the tuning split is test digits or overlaps training.
      runs.BenchmarkError: a variant's name or a step failed.
    """
    protocol.check_tuning(search.train_split, search.tune_split)
    variants = {"base": [], **search.variants}
    flags = {name: variant_flags(search, list(extra)) for name, extra in variants.items()}
    for name, f in flags.items():
        runs.run("msd_tf.main", [*f, f"--eval_split={search.tune_split}",
                                 f"--output_dir={os.path.join(search.output_dir, name)}"],
                 os.path.join(search.output_dir, "logs", f"{name}.log"),
                 dry_run=search.dry_run)
    models = ",".join(os.path.join(search.output_dir, n, "saved_model") for n in variants)
    eval_dir = os.path.join(search.output_dir, "eval")
    runs.run("msd_tf.evaluate", [
        "--flagfile=flags/mnist/eval.cfg", "--suite=strong", "--restarts=1", "--nocurves",
        f"--eval_batch_size={min(500, search.num_examples)}",
        f"--attacks={','.join(search.attacks)}", f"--eval_split={search.tune_split}",
        f"--num_examples={search.num_examples}", f"--models={models}",
        f"--cache_dir={os.path.join(search.output_dir, 'cache')}", f"--output_dir={eval_dir}",
        *([f"--data_dir={search.data_dir}"] if search.data_dir else [])],
        os.path.join(search.output_dir, "logs", "eval.log"), dry_run=search.dry_run)
    if search.dry_run:
        return []
    return report(search, variants, flags, eval_dir)


def report(search: Search, variants: dict, flags: dict, eval_dir: str) -> list[dict]:
    """tune.md / tune.json: the variants by union robust accuracy."""
    with open(os.path.join(eval_dir, "results.json")) as f:
        results = json.load(f)["models"]
    rows = []
    for name, extra in variants.items():
        s = results[name]
        with open(os.path.join(search.output_dir, name, "summary.json")) as f:
            summary = json.load(f)
        rows.append({
            "variant": name, "flags": " ".join(extra),
            "epochs": summary["config"]["epochs"], "clean": round(100 * s["clean"], 1),
            **{n: round(100 * v["acc"], 1) for n, v in s["norms"].items()},
            "union": round(100 * s["all"], 1), "passes": summary["compute"]["passes"],
            "train_seconds": summary["train_seconds_this_run"],
            "precision": summary["config"]["precision"]})
    rows.sort(key=lambda r: -r["union"])
    lines = [f"# Recipe search: {' '.join(search.recipe)}", "",
             f"Trained on {search.train_split}, evaluated on the first {search.num_examples} "
             f"of {search.tune_split} (held out of training; no test digit); attacks: "
             f"{', '.join(search.attacks)}"
             + (f"; every variant at {search.budget / 1e6:.2f} M example-passes"
                if search.budget else "") + ".", "",
             "| variant | flags | epochs | clean | l_inf | l_2 | l_1 | union | passes (M) "
             "| train (s) |", "|---" * 10 + "|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['flags'] or '-'} | {r['epochs']} | {r['clean']} | "
                     + " | ".join(str(r.get(n, "-")) for n in ("linf", "l2", "l1"))
                     + f" | {r['union']} | {r['passes'] / 1e6:.2f} | {r['train_seconds']} |")
    with open(os.path.join(search.output_dir, "tune.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(search.output_dir, "tune.json"), "w") as f:
        json.dump({"recipe": list(search.recipe), "flags": flags, "rows": rows,
                   "train_split": search.train_split, "tune_split": search.tune_split,
                   "num_examples": search.num_examples, "attacks": list(search.attacks),
                   "budget": search.budget}, f, indent=1)
    print("\n".join(lines), flush=True)
    return rows
