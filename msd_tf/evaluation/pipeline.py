"""The evaluation as a library (no flags): `build_suite` picks the attacks, `evaluate`
runs them on SavedModels and writes every report file; `msd_tf.evaluate` is its
command line. Usable from Python:

    >>> from msd_tf.evaluation import pipeline
    >>> specs = pipeline.build_suite("mnist", None, restarts=1, suite_name="strong",
    ...                              budget="paper", eps={})
    >>> config = pipeline.EvalConfig("mnist", specs, split="test[:1000]", num_examples=500,
    ...                              output_dir="runs/eval")
    >>> result = pipeline.evaluate(["runs/mnist/msd/saved_model"], config)
    >>> print(result.markdown)

A SavedModel is a program: loading one runs its graph. Evaluate only models you trust.
"""

import dataclasses
import json
import os
import sys

import numpy as np

from msd_tf import data, fingerprints, machine, protocol
from msd_tf.evaluation import aggregate, checks, corruptions, profiling, report, runner, suite
from msd_tf.evaluation.records import EvalConfig, ModelResult
from msd_tf.export import ModelLoadError, load_model, model_name
from msd_tf.threats import QUERIES


class EvalError(ValueError):
    """Bad input to the evaluation; the message says which."""


def build_suite(dataset: str, names, *, restarts: int, suite_name: str, budget: str, eps,
                apgd_steps: int = 100, queries: int = QUERIES, only_robust=(), steps=None,
                curves: bool = True):
    """The attacks of `suite_name` ("paper", "strong", "autoattack" or "tb19"), or the
    `names` among them in that order; `only_robust` names become `only_robust`, `steps`
    (name -> int) overrides budgets. `restarts` applies to the paper's attacks (and
    raises APGD-CE's in the strong suite); the autoattack suite keeps AutoAttack's, and
    the tb19 suite (Tramer and Boneh's attacks, Table 5) runs every attack once.
    `curves=False` (strong suite): minimization attacks run only on what is still robust
    too (no accuracy-against-radius curves)."""
    if suite_name == "autoattack":
        specs = suite.autoattack_suite(dataset, eps=eps, budget=budget,
                                       apgd_steps=apgd_steps, queries=queries)
    elif suite_name == "tb19":
        specs = suite.tb19_suite(dataset, eps=eps, budget=budget)
    else:
        specs = suite.paper_suite(dataset, restarts=restarts, eps=eps, budget=budget)
    if suite_name == "strong":
        # Every fixed-radius attack on what the earlier attacks of its norm left robust:
        # on an example already broken at eps it could not change a flag (its row is
        # then cumulative, "+ earlier"). Minimization attacks still see every clean
        # example (their norms are the accuracy-against-radius curves) unless no curves
        # are asked for.
        specs = [s if s.minimizes and curves else dataclasses.replace(s, only_robust=True)
                 for s in specs]
        specs += suite.strong_additions(dataset, restarts=restarts, eps=eps, budget=budget,
                                        apgd_steps=apgd_steps, queries=queries)
    if names:
        known = {s.name for s in specs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise EvalError(f"Unknown attack(s) {unknown}; the {suite_name} suite has "
                            f"{sorted(known)}.")
        by_name = {s.name: s for s in specs}
        specs = [by_name[n] for n in dict.fromkeys(names)]
    changes = {n: {} for n in (*only_robust, *(steps or {}))}
    for n in only_robust:
        changes[n]["only_robust"] = True
    for n, v in (steps or {}).items():
        changes[n]["steps"] = v
    unknown = sorted(set(changes) - {s.name for s in specs})
    if unknown:
        raise EvalError(f"--only_robust / --attack_steps name attacks not in the run: "
                        f"{unknown}.")
    return [dataclasses.replace(s, **changes[s.name]) if s.name in changes else s
            for s in specs]


def parse_attack_steps(values) -> dict:
    out = {}
    for item in values:
        name, _, steps = item.partition(":")
        if not steps.isdigit() or int(steps) < 1:
            raise EvalError(f"--attack_steps wants name:steps with steps >= 1; got {item!r}.")
        out[name] = int(steps)
    return out


def prior_broken(prune_with: str, name: str, keys) -> dict:
    """norm -> examples an earlier evaluation (`prune_with`) broke, for model `name`,
    checked to be the same examples."""
    path = os.path.join(prune_with, f"per_example_{name}.npz")
    try:
        with open(os.path.join(prune_with, "results.json")) as f:
            suite_specs = json.load(f)["suite"]
        with np.load(path) as f:
            per = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError) as e:
        raise EvalError(f"--prune_with {prune_with}: cannot read {path} or its results.json "
                        f"({e}); evaluate the same models there first.") from e
    earlier = per.get("example_key", np.array([]))[:len(keys)]
    if len(earlier) < len(keys) or not np.array_equal(earlier, keys):
        raise EvalError(f"--prune_with {prune_with}: its examples differ from these (model "
                        f"{name}); use the evaluation of the same data.")
    return {n: b[:len(keys)] for n, b in aggregate.broken_per_norm(per, suite_specs).items()}


def load_checked(path: str, x, classes: int, dataset: str):
    """`export.load_model(path)`, checked against the data: input shape and logits.

    Raises:
      EvalError: unloadable, or it does not map these images to `classes` logits.
    """
    try:
        loaded = load_model(path)
    except ModelLoadError as e:
        raise EvalError(str(e)) from e
    want = loaded.metadata.get("input_shape")
    if want is not None and tuple(want) != tuple(x.shape[1:]):
        raise EvalError(f"{path}: the model takes images of shape {tuple(want)} but "
                        f"--dataset={dataset} has {tuple(x.shape[1:])}; evaluate it on the "
                        "data set it was trained for.")
    try:
        out = np.asarray(loaded.logits_fn(x[:2]))
    except Exception as e:  # noqa: BLE001 - any failure: the model rejects these inputs
        first = " ".join(str(e).split())[:160]
        raise EvalError(f"{path}: the model fails on {dataset} images of shape "
                        f"{tuple(x.shape[1:])} ({type(e).__name__}: {first}); evaluate it on "
                        "the data set it was trained for.") from e
    if out.ndim != 2 or out.shape[1] != classes:
        raise EvalError(f"{path}: outputs have shape {out.shape}; expected logits "
                        f"[N, {classes}] for {dataset}.")
    return loaded


def _trained_on_evaluated(trained_on: str | None, split: str, n: int,
                          dataset: str) -> list[str]:
    """A warning when the model was trained on some of the `n` evaluated examples."""
    if not trained_on:
        return []
    base, r = protocol.indices(split, dataset)
    evaluated = f"{base}[{r.start}:{r.start + n}]"
    shared = protocol.overlap(trained_on, evaluated, dataset)
    return [f"trained on {trained_on}, which holds {shared} of the {n} evaluated examples "
            f"({evaluated}): its robust accuracy there is not a test figure."] if shared else []


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """What `evaluate` returns: each model's result, results.md's text and the files."""

    models: dict
    markdown: str
    paths: dict

    @property
    def summaries(self) -> dict:
        return {name: r.summary for name, r in self.models.items()}


def evaluate(model_paths, config: EvalConfig, *, on_compute=None) -> EvalResult:
    """Evaluates every model (`evaluate_model`), writes each one's files (`report_model`)
    and the evaluation's (`report_evaluation`); returns what they hold.

    Raises:
      EvalError: a model cannot be loaded or does not fit the data.
      data.DataError: the examples cannot be loaded.
    """
    x, y = data.load_arrays(config.dataset, config.split, config.data_dir)
    x, y = x[:config.num_examples], y[:config.num_examples]
    os.makedirs(config.output_dir, exist_ok=True)
    code = runner.code_version()
    keys = runner.example_keys(x, y)
    results = {}
    for path in model_paths:
        name = model_name(path)
        while name in results:
            name += "_"
        results[name] = evaluate_model(name, path, x, y, keys, config, code=code,
                                       on_compute=on_compute)
        report_model(results[name], x, y, keys, config)
    return report_evaluation(results, x, y, config, code)


def evaluate_model(name: str, path: str, x, y, keys, config: EvalConfig, *, code: dict,
                   on_compute=None) -> ModelResult:
    """Loads one model, checks it, runs the suite on it and aggregates the records."""
    loaded = load_checked(path, x, data.DATASETS[config.dataset]["classes"], config.dataset)
    model = {"path": path, "abspath": os.path.abspath(path), "source": loaded.source,
             "fingerprint": loaded.fingerprint, "weights_sha256": loaded.weights_fingerprint,
             # what trained it (msd_tf.json of a SavedModel exported by msd_tf.main;
             # None for other models): msd_tf.protocol
             "trained_on": loaded.metadata.get("train_split"),
             "protocol": loaded.metadata.get("protocol")}
    print(f"Model {name}: {model['abspath']} ({loaded.source}), sha256 {loaded.fingerprint}",
          flush=True)
    warnings = checks.sanity_warnings(loaded.logits_fn, x, y)
    warnings += _trained_on_evaluated(model["trained_on"], config.split, len(x),
                                      config.dataset)
    for w in warnings:
        print(f"WARNING [{name}]: {w}", file=sys.stderr, flush=True)
    prior = prior_broken(config.prune_with, name, keys) if config.prune_with else None
    clean, records, grid = runner.run_suite(
        name, loaded.fingerprint, loaded.logits_fn, x, y, config, code=code,
        prior_broken=prior, seed_key=loaded.weights_fingerprint, on_compute=on_compute)
    return ModelResult(name, model, clean, records, grid, aggregate.aggregate(clean, records),
                       warnings, logits_fn=loaded.logits_fn)


def report_model(result: ModelResult, x, y, keys, config: EvalConfig) -> None:
    """One model's files: per-example flags, the grid of its strongest adversarial
    examples; and (verbose) where the time went."""
    out, name = config.output_dir, result.name
    if config.verbose:
        print(f"[{name}] where the time went (profile.json):", flush=True)
        print("\n".join(profiling.table(_profile(result))), flush=True)
    report.save_per_example(os.path.join(out, f"per_example_{name}.npz"), result.clean,
                            result.records, keys)
    k = runner.GRID_EXAMPLES
    found = strongest(result.records, result.grid)
    preds = {norm: checks.predict(result.logits_fn, imgs) if len(imgs) else imgs[:0]
             for norm, (imgs, _, _) in found.items()}
    eps = {norm: info["eps"] for norm, info in result.summary["norms"].items()}
    report.plot_examples(x[:k], y[:k], found, os.path.join(out, f"examples_{name}.png"),
                         eps=eps, predictions=preds)


def _profile(result: ModelResult) -> dict:
    return {n: r.profile for n, r in result.records.items()}


def curves(results: dict) -> dict:
    """norm -> {"radii", "eps", "models": name -> {"curve", "at_eps"}}: accuracy against
    the radius under the minimization attacks (0 to twice the radius)."""
    out = {}
    for name, r in results.items():
        for norm, info in r.summary["norms"].items():
            radii = np.linspace(0, 2 * info["eps"], 41)
            panel = out.setdefault(norm, {"radii": radii, "eps": info["eps"], "models": {}})
            panel["models"][name] = {
                "curve": aggregate.accuracy_at_radii(r.clean, r.records, norm, radii,
                                                     minimization_only=True),
                "at_eps": info["acc"]}
    return out


def provenance(config: EvalConfig, results: dict, x, y, code: dict) -> dict:
    """Where the numbers come from: models, data, suite, seeds, code and machine."""
    return {
        "models": {n: r.model for n, r in results.items()},
        "dataset": config.dataset,
        "data_dir": os.path.abspath(config.data_dir) if config.data_dir else None,
        "split": config.split, "num_examples": len(x),
        "data_sha256": fingerprints.of_arrays(x, y), "suite": config.suite_name,
        "restarts": sorted({s.restarts for s in config.specs}),
        "pruned_with": os.path.abspath(config.prune_with) if config.prune_with else None,
        "seed": config.seed, "attack_seeds": "per (model, attack, batch): "
        "msd_tf.evaluation.runner.attack_seed(seed, weights_sha256, attack, batch); "
        "per restart within it", "batch_size": config.batch_size,
        "versions": {k: v for k, v in code.items() if k != "sources"},
        "code_sha256": code["sources"], "git_commit": fingerprints.git_commit(),
        "machine": machine.facts()}


def report_evaluation(results: dict, x, y, config: EvalConfig, code: dict) -> EvalResult:
    """The evaluation's files: results.md/.json/.csv, curves.png, profile.json."""
    out = config.output_dir
    if config.draw_curves:
        report.plot_curves(curves(results), os.path.join(out, "curves.png"))
    summaries = {n: r.summary for n, r in results.items()}
    warnings = {n: r.warnings for n, r in results.items()}
    prov = provenance(config, results, x, y, code)
    paths = report.write_reports(summaries, out, extra={
        "provenance": prov, "suite": [s.__dict__ for s in config.specs],
        "warnings": warnings})
    # Apart from results.json, which identical commands reproduce byte for byte.
    paths["profile"] = os.path.join(out, "profile.json")
    with open(paths["profile"], "w") as fh:
        json.dump({"machine": prov["machine"],
                   "models": {n: _profile(r) for n, r in results.items()}}, fh, indent=2)
    return EvalResult(results, report.results_markdown(summaries, warnings), paths)


def strongest(records, grid):
    """Per threat model, the smallest sound adversarial example of each grid image (at
    any norm: the grid marks those beyond the radius)."""
    out = {}
    for name, rec in records.items():
        norm = rec.spec.norm
        imgs, sound, norms = grid[name]
        if norm not in out:
            out[norm] = (imgs.copy(), sound.copy(), np.where(sound, norms, np.inf))
            continue
        best_imgs, best_found, best_norms = out[norm]
        take = sound & (norms < best_norms)
        best_imgs[take] = imgs[take]
        out[norm] = (best_imgs, best_found | sound, np.where(take, norms, best_norms))
    return out


def evaluate_corruptions(model_paths, *, dataset: str, output_dir: str, which: str,
                         num_examples: int, data_dir: str | None = None,
                         paper: dict | None = None) -> None:
    """CIFAR-10-C accuracy of every model (Table 7): `which` is "standard" (the 15
    corruptions) or "all" (19), every severity, from the distributed .npy files in
    `data_dir` (else tensorflow-datasets); writes corruptions.md in `output_dir`."""
    if dataset != "cifar10":
        raise EvalError(f"--corruptions needs --dataset=cifar10 (CIFAR-10-C); got "
                        f"--dataset={dataset}.")
    x_probe = np.zeros((2, *data.DATASETS["cifar10"]["shape"]), np.float32)
    models = [(model_name(p), load_checked(p, x_probe, 10, "cifar10").logits_fn)
              for p in model_paths]
    names = corruptions.STANDARD if which == "standard" else corruptions.STANDARD + \
        corruptions.EXTRA
    loader = corruptions.npy_loader(data_dir) if data_dir else corruptions.load_corrupted
    corruptions.evaluate_corruptions(models, output_dir=output_dir, corruptions=names,
                                     num_examples=num_examples, loader=loader, paper=paper)
