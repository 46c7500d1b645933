"""One model of a table, trained and evaluated: a `Unit`, its key and its result.

A unit's result is committed (`docs/results/<scale>/<name><tag>.json`; the tag names
another evaluation of the same model, e.g. `.tb19`) and reused only while its key
matches: the SHA-256 of its recipe and evaluation flags with every flagfile replaced by
its lines, the content of its training digits and of the digits evaluated, the training
key of the model it fine-tunes, `BEHAVIOUR_VERSION` and `EVALUATION_VERSION`. A result
whose key differs is stale: the unit is trained and evaluated again and the file replaced.

A unit's run folder is keyed by its training alone (`_train_key`: the key without the
evaluation), and each evaluation of it goes into `eval-<key>` there: tables that
evaluate the same model differently (Table 3 and Table 5's MSD) train it once.
"""

import csv
import dataclasses
import datetime
import hashlib
import json
import os

from msd_tf import cli, data, fingerprints, machine, protocol
from msd_tf.benchmarks import budgets, runs
from msd_tf.threats import NORMS

# Raised whenever a change makes training histories or evaluation flags differ for the
# same flags (tests/test_behaviour.py pins them): every committed result is then stale.
BEHAVIOUR_VERSION = 1
# Raised whenever the evaluation's per-example results move for the same flags and model
# (the runner: which examples an attack sees in one batch, the seeds): every committed
# result's evaluation is then stale, but its training (and run folder) is not.
# 2: the examples still robust are packed into full batches (evaluation.runner.pack).
EVALUATION_VERSION = 2
FORMAT = 1
THREATS = (*NORMS, "union")
# `msd_tf.evaluate`'s defaults, for evaluation flags that leave them out (a test checks
# they are still its defaults: else a key would describe digits the evaluation skips).
EVAL_SPLIT, NUM_EXAMPLES = protocol.PAPER.eval_split, 1000


@dataclasses.dataclass(frozen=True)
class Unit:
    """One model of a table.

    Attributes:
      name: its result file and run folder (unique within a scale).
      label: its name in tables.
      recipe: `msd_tf.main` flags (a flagfile and overrides; no --data_dir/--output_dir).
      share: the fraction of the budget its own training spends (None: not budgeted,
        e.g. standard training).
      init_from: the unit whose SavedModel it fine-tunes (None: from scratch).
      digits: every evaluation of it attacks at most the first `digits` digits of its
        split (None: as many as the evaluation says).
    """

    name: str
    label: str
    recipe: tuple[str, ...]
    share: float | None = 1.0
    init_from: str | None = None
    digits: int | None = None


@dataclasses.dataclass(frozen=True)
class Context:
    """Where and how units run: the scale's evaluation, data and folders."""

    scale: str
    evaluation: tuple[str, ...]
    data_dir: str | None
    results_dir: str
    work_dir: str
    budget: float | None = None
    dry_run: bool = False
    tag: str = ""  # result files <name><tag>.json: a table evaluating its models its own way


def _last(flags: list[str], name: str, default: str) -> str:
    values = [f.split("=", 1)[1] for f in flags if f.startswith(f"--{name}=")]
    return values[-1] if values else default


def _drop(flags: list[str], *names: str) -> list[str]:
    return [f for f in flags if not f.startswith(tuple(f"--{n}=" for n in names))]


def evaluated(flags: list[str]) -> tuple[str, int]:
    """(split, how many of its first digits) expanded evaluation flags attack."""
    return (_last(flags, "eval_split", EVAL_SPLIT),
            int(_last(flags, "num_examples", str(NUM_EXAMPLES))))


def recipe_flags(unit: Unit, ctx: Context) -> list[str]:
    """The unit's `msd_tf.main` flags with the context's data folder."""
    return [*unit.recipe, *([f"--data_dir={ctx.data_dir}"] if ctx.data_dir else [])]


def evaluation_of(unit: Unit, ctx: Context) -> tuple[str, ...]:
    """The context's evaluation flags for this unit: capped at its `digits`."""
    if unit.digits is None:
        return ctx.evaluation
    _, n = evaluated(cli.expand_flagfiles(list(ctx.evaluation)))
    return ctx.evaluation if n <= unit.digits else (*ctx.evaluation,
                                                    f"--num_examples={unit.digits}")


def describe(unit: Unit, ctx: Context, parent_key: str | None = None) -> dict:
    """What the unit's key is the hash of, and (under "_" names, not hashed) the resolved
    config, splits and protocol note. `parent_key`: the training key (`_train_key`) of the
    model it fine-tunes: its training, not how that model was evaluated."""
    from msd_tf.flags import parse_config

    flags = recipe_flags(unit, ctx)
    config = parse_config(flags)
    train_split, eval_split, note = protocol.resolve(config.dataset, config.data_dir,
                                                     config.train_split, config.eval_split)
    x, y = data.load_arrays(config.dataset, train_split, config.data_dir)
    evaluation = cli.expand_flagfiles(list(evaluation_of(unit, ctx)))
    split, n = evaluated(evaluation)
    xe, ye = data.load_arrays(config.dataset, split, config.data_dir)
    description = {
        "format": FORMAT, "behaviour": BEHAVIOUR_VERSION,
        "recipe": _drop(cli.expand_flagfiles(list(unit.recipe)), "output_dir", "data_dir"),
        "evaluation": _drop(evaluation, "output_dir", "data_dir", "models", "cache_dir"),
        "train_split": train_split, "train_data_sha256": fingerprints.of_arrays(x, y),
        "eval_split": split, "num_examples": min(n, len(xe)),
        "eval_data_sha256": fingerprints.of_arrays(xe[:n], ye[:n]),
        "parent": parent_key, "evaluation_behaviour": EVALUATION_VERSION,
        "_config": dataclasses.replace(config, train_split=train_split),
        "_train_examples": len(x), "_note": note,
        "_protocol": protocol.name_of(train_split, split),
    }
    training = {k: description[k] for k in ("format", "behaviour", "recipe", "train_split",
                                             "train_data_sha256", "parent")}
    description["_train_key"] = key_of(training)
    return description


def plan_of(description: dict) -> budgets.Plan:
    """The unit's training compute as planned (`budgets.planned`: traces one training
    step, so TensorFlow is imported); computed once per description."""
    if "_plan" not in description:
        description["_plan"] = budgets.planned(description["_config"],
                                               description["_train_examples"])
    return description["_plan"]


def planned_passes(description: dict, result: dict | None) -> float:
    """The passes the unit's recipe plans: as its current `result` recorded them (no
    trace, so assembling committed results needs no TensorFlow), else `plan_of`. The
    result's key holds the recipe and BEHAVIOUR_VERSION; a change of the step cost that
    moved no training history would not change it, which is why the suite re-plans every
    recipe of BENCHMARKS (test_every_budgeted_recipe_spends_its_share_of_its_budget)."""
    recorded = (result or {}).get("compute", {}).get("planned_passes")
    return float(recorded) if recorded is not None else plan_of(description).passes


def key_of(description: dict) -> str:
    content = {k: v for k, v in description.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def result_path(unit: Unit, ctx: Context) -> str:
    return os.path.join(ctx.results_dir, f"{unit.name}{ctx.tag}.json")


def load_result(unit: Unit, ctx: Context, key: str) -> tuple[dict | None, str | None]:
    """(the committed result, None) if its key is `key`; else (None, why not)."""
    return load_keyed(result_path(unit, ctx), key, "no result",
                      "its recipe, data, evaluation or code differs")


def load_keyed(path: str, key: str, missing: str, differs: str) -> tuple[dict | None, str | None]:
    """(the JSON record at `path`, None) if its `key` is `key`; else (None, why not:
    `missing`, unreadable, or stale because `differs`)."""
    if not os.path.exists(path):
        return None, missing
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as e:
        return None, f"{path} unreadable ({e})"
    if result.get("key") != key:
        return None, (f"{path} is stale ({differs}: key {str(result.get('key'))[:10]} != "
                      f"{key[:10]})")
    return result, None


def run_dir(unit: Unit, ctx: Context, description: dict) -> str:
    """The unit's run folder, keyed by its training: a changed recipe never resumes an
    old run; another evaluation of the same training reuses it."""
    return os.path.join(ctx.work_dir, f"{unit.name}-{description['_train_key'][:10]}")


def eval_dir(unit: Unit, ctx: Context, description: dict) -> str:
    """The folder of the unit's evaluation under the context's evaluation flags."""
    return os.path.join(run_dir(unit, ctx, description), f"eval-{key_of(description)[:10]}")


def train(unit: Unit, ctx: Context, description: dict, parent_dir: str | None) -> float:
    """Trains (or resumes, or reuses) the unit's run; returns the seconds it took."""
    folder = run_dir(unit, ctx, description)
    flags = [*recipe_flags(unit, ctx), f"--output_dir={folder}"]
    if unit.init_from:
        flags.append(f"--init_from={os.path.join(parent_dir, 'saved_model')}")
    return runs.run("msd_tf.main", flags, os.path.join(folder, "train.log"),
                    dry_run=ctx.dry_run)


def evaluate(unit: Unit, ctx: Context, description: dict) -> float:
    folder, out = run_dir(unit, ctx, description), eval_dir(unit, ctx, description)
    flags = [*evaluation_of(unit, ctx), f"--models={os.path.join(folder, 'saved_model')}",
             f"--output_dir={out}",
             f"--cache_dir={os.path.join(ctx.work_dir, 'cache')}",
             *([f"--data_dir={ctx.data_dir}"] if ctx.data_dir else [])]
    return runs.run("msd_tf.evaluate", flags, out + ".log",
                    dry_run=ctx.dry_run)


def _pct(v):
    return None if v is None else round(100.0 * v, 1)


def collect(unit: Unit, ctx: Context, key: str, description: dict, seconds: dict,
            parent: dict | None) -> dict:
    """The unit's result record, from its run's summary.json and evaluation."""
    from msd_tf.evaluation import compare

    folder, evaluated = run_dir(unit, ctx, description), eval_dir(unit, ctx, description)
    with open(os.path.join(folder, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(evaluated, "results.json")) as f:
        results = json.load(f)
    (model, s), = results["models"].items()
    flags = compare.robust_flags(evaluated)[model]
    compute = summary["compute"]
    total = compute["passes"] + (parent["compute"]["total_passes"] if parent else 0)
    prov = results["provenance"]
    return {
        "name": unit.name, "label": unit.label, "key": key, "scale": ctx.scale,
        "protocol": description["_protocol"], "train_split": description["train_split"],
        "eval_split": description["eval_split"], "num_examples": prov["num_examples"],
        "accuracy": {"clean": _pct(s["clean"]), "union": _pct(s["all"]),
                     **{n: _pct(s["norms"][n]["acc"]) for n in NORMS if n in s["norms"]}},
        "paper_attacks": {("union" if n == "all" else n): _pct(v)
                          for n, v in s.get("paper_only", {}).items()},
        "radii": {n: s["norms"][n]["eps"] for n in NORMS if n in s["norms"]},
        "robust": robust_strings(flags),
        "suite": [a["name"] for a in results["suite"]],
        "recipe": description["recipe"], "evaluation": description["evaluation"],
        "init_from": unit.init_from, "share": unit.share, "budget": ctx.budget,
        "compute": {"passes": compute["passes"], "total_passes": total,
                    "forward_examples": compute["forward_examples"],
                    "backward_examples": compute["backward_examples"],
                    "planned_passes": plan_of(description).passes},
        "threats": summary["config"]["threats"],
        "first_layer": first_layer(os.path.join(folder, "saved_model")),
        "history": training_history(os.path.join(folder, "history.csv")),
        "epochs": summary["config"]["epochs"],
        "precision": summary["config"]["precision"],
        "seconds": {**seconds, **_attack_seconds(evaluated)},
        "machine": machine.describe(summary["machine"]),
        "eval_machine": machine.describe(prov["machine"]) if prov.get("machine") else None,
        "git_commit": prov.get("git_commit"),
        "weights_sha256": prov["models"][model].get("weights_sha256"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "inputs": {k: v for k, v in description.items() if not k.startswith("_")},
    }


# history.csv's columns a result keeps: what the training attack achieved per epoch and
# which norm MSD kept (`chose_*`); the compute columns are summed into `compute`.
HISTORY_COLUMNS = ("loss", "adv_acc", "clean_acc", "chose_linf", "chose_l2", "chose_l1")


def training_history(history_csv: str) -> list[dict] | None:
    """The training's per-epoch metrics (`HISTORY_COLUMNS` that the run logged, 4
    decimals), one dict per epoch; None without the file."""
    if not os.path.exists(history_csv):
        return None
    with open(history_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{c: round(float(row[c]), 4) for c in HISTORY_COLUMNS
             if row.get(c) not in (None, "", "NA")} for row in rows]


def _attack_seconds(evaluated: str) -> dict:
    """{"attacks": the attacks' seconds as measured when each ran, "cached_attacks": how
    many were read from the shared cache (e.g. after a new attack joined the suite)}: the
    evaluation's wall time alone undercounts what a partly cached evaluation cost."""
    path = os.path.join(evaluated, "profile.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        (profile,) = json.load(f)["models"].values()
    return {"attacks": round(sum(p["seconds"] for p in profile.values()), 1),
            "cached_attacks": sum(bool(p["cached"]) and p["attacked"] > 0
                                  for p in profile.values())}


def bits(flags) -> str:
    """Per-digit robust flags as a result keeps them: one character per digit, `1` robust."""
    return "".join("1" if v else "0" for v in flags)


def robust_strings(flags: dict) -> dict:
    """{threat: `bits`} of an evaluation's per-digit flags (`compare.robust_flags`)."""
    return {t: bits(flags[t]) for t in ("clean", *THREATS) if t in flags}


def first_layer(saved_model: str, ratio: float = 0.25) -> dict | None:
    """The model's first 5x5 convolution (appendix E): its kernel (4 decimals), filter
    count and thresholding filters (`msd_tf.evaluation.filters`); None without one."""
    from msd_tf.evaluation import filters

    try:
        kernel = filters.first_conv_kernel(saved_model)
    except ValueError:
        return None
    return {"filters": int(kernel.shape[-1]), "ratio": ratio,
            "thresholding": int(filters.thresholding_filters(kernel, ratio=ratio).sum()),
            "kernel": [[[[round(float(v), 4) for v in c] for c in row] for row in col]
                       for col in kernel]}


def add_first_layer(result: dict, unit: Unit, ctx: Context, description: dict) -> dict:
    """A committed result measured before it kept the first layer: adds it from the
    unit's model if that is still on disk (and rewrites the result), else unchanged."""
    saved = os.path.join(run_dir(unit, ctx, description), "saved_model")
    if not os.path.exists(saved) or ctx.dry_run:
        return result
    layer = first_layer(saved)
    if layer is None:
        return result
    result = dict(result, first_layer=layer)
    save_result(result, result_path(unit, ctx))
    return result


def same_model(a: dict, b: dict) -> bool | None:
    """Whether two per-model results measured the same weights: their weights' SHA-256
    where both recorded it, else their first-layer kernels; None if neither tells. Two
    results of one unit can differ in weights when the model was trained again in between
    (on another CPU the weights are not bit-exact)."""
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    kernels = [(r.get("first_layer") or {}).get("kernel") for r in (a, b)]
    return None if None in kernels else kernels[0] == kernels[1]


def save_result(result: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
