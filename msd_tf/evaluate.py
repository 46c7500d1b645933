"""`python -m msd_tf.evaluate --models=runs/mnist/msd/saved_model[,...] [--flagfile=...]`.

Runs the paper's attack suite (PAPER_NOTES section 7) on SavedModels (or training-run
folders, whose latest checkpoint is loaded) and writes, in `--output_dir`: results.md
(laid out like Table 3, one column per model), results.json, results.csv, one
per-example npz per model, accuracy-against-radius plots (curves.png) and a grid of
clean and adversarial examples per model. Killed and started again, it resumes.
"""

import json
import os
import sys

from absl import app, flags

from msd_tf import flags as msd_flags  # noqa: F401 - shared flags: dataset, data_dir, ...

_MODELS = flags.DEFINE_list("models", None, "SavedModel folders or training-run folders.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 1000, "First N examples of the split.",
                                     lower_bound=1)
_RESTARTS = flags.DEFINE_integer("restarts", 10, "Random restarts per attack.", lower_bound=1)
_SUITE = flags.DEFINE_enum("suite", "paper", ["paper", "strong"],
                           "paper: every attack of section 7; strong: plus APGD-CE/APGD-T.")
_ATTACKS = flags.DEFINE_list("attacks", None, "Run only these attacks of the suite.")
_BUDGET = flags.DEFINE_enum("budget", "paper", ["paper", "fast"],
                            "fast: a few iterations per attack (smoke tests only).")
_EVAL_EPS = {n: flags.DEFINE_float(f"eval_{n}_eps", None, f"{n} radius (default: paper's).")
             for n in ("linf", "l2", "l1")}
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", 100, "Examples per attack batch.",
                                   lower_bound=1)

for _n in ("linf", "l2", "l1"):
    flags.register_validator(f"eval_{_n}_eps", lambda v: v is None or v > 0,
                             message=f"--eval_{_n}_eps must be > 0")


class EvalError(ValueError):
    """Bad input to the evaluation; the message says which."""


def load_model(path: str):
    """A logits callable and its metadata from a SavedModel or a training-run folder."""
    from msd_tf.export import load_logits_fn

    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return load_logits_fn(path)
    config_path = os.path.join(path, "config.json")
    if os.path.isfile(config_path):
        import tensorflow as tf

        from msd_tf import data
        from msd_tf.models import build_model

        with open(config_path) as f:
            cfg = json.load(f)
        info = data.DATASETS[cfg["dataset"]]
        model = build_model(cfg["model"], info["shape"], info["classes"])
        latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
        if latest is None:
            raise EvalError(f"{path}: a training run without checkpoints.")
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        return (lambda x: model(x, training=False)), {"num_classes": info["classes"]}
    raise EvalError(f"{path} is neither a SavedModel folder (saved_model.pb) nor a training "
                    "run folder (config.json + checkpoints/).")


def build_suite(dataset: str, names, *, restarts: int, suite_name: str, budget: str, eps):
    from msd_tf.evaluation import suite

    specs = suite.paper_suite(dataset, restarts=restarts, eps=eps, budget=budget)
    if suite_name == "strong":
        specs += suite.strong_additions(dataset, restarts=restarts, eps=eps, budget=budget)
    if names:
        known = {s.name for s in specs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise EvalError(f"Unknown attack(s) {unknown}; the {suite_name} suite has "
                            f"{sorted(known)}.")
        specs = [s for s in specs if s.name in names]
    return specs


def evaluate(model_paths, *, dataset: str, data_dir, split: str, num_examples: int,
             output_dir: str, specs, batch_size: int = 100, seed: int = 0,
             verbose: bool = True, on_compute=None) -> dict:
    """Evaluates every model; writes all report files; returns the summaries."""
    import numpy as np

    from msd_tf import data
    from msd_tf.evaluation import checks, report, runner
    from msd_tf.export import model_name

    x, y = data.load_arrays(dataset, split, data_dir)
    x, y = x[:num_examples], y[:num_examples]
    classes = data.DATASETS[dataset]["classes"]
    os.makedirs(output_dir, exist_ok=True)
    summaries, curves, warnings = {}, {}, {}
    names = []
    for path in model_paths:
        name = model_name(path)
        while name in names:
            name += "_"
        names.append(name)
        logits_fn, _ = load_model(path)
        out = np.asarray(logits_fn(x[:2]))
        if out.ndim != 2 or out.shape[1] != classes:
            raise EvalError(f"{path}: outputs have shape {out.shape}; expected logits "
                            f"[N, {classes}] for {dataset}.")
        warnings[name] = checks.sanity_warnings(logits_fn, x, y)
        for w in warnings[name]:
            print(f"WARNING [{name}]: {w}", file=sys.stderr)
        clean, records, grid = runner.run_suite(
            name, logits_fn, x, y, specs, output_dir=output_dir, batch_size=batch_size,
            seed=seed, verbose=verbose, on_compute=on_compute)
        summaries[name] = report.aggregate(clean, records)
        report.save_per_example(os.path.join(output_dir, f"per_example_{name}.npz"),
                                clean, records)
        for norm, info in summaries[name]["norms"].items():
            radii = np.linspace(0, 2 * info["eps"], 41)
            curves.setdefault(norm, (radii, info["eps"], {}))[2][name] = \
                report.accuracy_at_radii(clean, records, norm, radii)
        report.plot_examples(x[:runner.GRID_EXAMPLES], y[:runner.GRID_EXAMPLES],
                             _strongest(records, grid),
                             os.path.join(output_dir, f"examples_{name}.png"))
    report.plot_curves(curves, os.path.join(output_dir, "curves.png"))
    extra = {"dataset": dataset, "split": split, "num_examples": len(x),
             "suite": [s.__dict__ for s in specs], "warnings": warnings, "seed": seed}
    report.write_reports(summaries, output_dir, extra=extra)
    return summaries


def _strongest(records, grid):
    """Per threat model, the smallest sound adversarial example of each grid image."""
    import numpy as np

    out = {}
    for name, rec in records.items():
        norm = rec["spec"].norm
        imgs, sound, norms = grid[name]
        if norm not in out:
            out[norm] = (imgs.copy(), sound.copy(), np.where(sound, norms, np.inf))
            continue
        best_imgs, best_found, best_norms = out[norm]
        take = sound & (norms < best_norms)
        best_imgs[take] = imgs[take]
        out[norm] = (best_imgs, best_found | sound, np.where(take, norms, best_norms))
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from msd_tf import data

    f = flags.FLAGS
    if not _MODELS.value:
        sys.exit("error: --models is required (SavedModel or training-run folders).")
    eps = {n: h.value for n, h in _EVAL_EPS.items() if h.value is not None}
    dataset = f.dataset
    if dataset == "cifar10_corrupted":
        from msd_tf.evaluation import corruptions

        try:
            corruptions.evaluate_corruptions(_MODELS.value, output_dir=f.output_dir,
                                             load_model=load_model,
                                             num_examples=_NUM_EXAMPLES.value)
        except (EvalError, data.DataError, ValueError) as e:
            sys.exit(f"error: {e}")
        with open(os.path.join(f.output_dir, "corruptions.md")) as fh:
            print(fh.read())
        return
    try:
        specs = build_suite(dataset, _ATTACKS.value, restarts=_RESTARTS.value,
                            suite_name=_SUITE.value, budget=_BUDGET.value, eps=eps)
        evaluate(_MODELS.value, dataset=dataset, data_dir=f.data_dir, split=f.eval_split,
                 num_examples=_NUM_EXAMPLES.value, output_dir=f.output_dir, specs=specs,
                 batch_size=_EVAL_BATCH.value, seed=f.seed)
    except (EvalError, data.DataError, ValueError) as e:
        sys.exit(f"error: {e}")
    with open(os.path.join(f.output_dir, "results.md")) as fh:
        print(fh.read())


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app.run(main)


if __name__ == "__main__":
    run()
