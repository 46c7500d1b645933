"""The evaluation as a library (no flags): `build_suite` picks the attacks, `evaluate`
runs them on SavedModels and writes every report file; `msd_tf.evaluate` is its
command line. Usable from Python:

    >>> from msd_tf.evaluation import pipeline
    >>> specs = pipeline.build_suite("mnist", None, restarts=1, suite_name="strong",
    ...                              budget="paper", eps={})
    >>> pipeline.evaluate(["runs/mnist/msd/saved_model"], dataset="mnist", data_dir=None,
    ...                   split="test", num_examples=500, output_dir="runs/eval", specs=specs)

A SavedModel is a program: loading one runs its graph. Evaluate only models you trust.
"""

import dataclasses
import json
import os
import sys

import numpy as np

from msd_tf import data, fingerprints, machine, protocol
from msd_tf.evaluation import aggregate, checks, corruptions, profiling, report, runner, suite
from msd_tf.export import ModelLoadError, load_model, model_name
from msd_tf.threats import QUERIES


class EvalError(ValueError):
    """Bad input to the evaluation; the message says which."""


def build_suite(dataset: str, names, *, restarts: int, suite_name: str, budget: str, eps,
                apgd_steps: int = 100, queries: int = QUERIES, only_robust=(), steps=None,
                curves: bool = True):
    """The attacks of `suite_name` ("paper", "strong" or "autoattack"), or the `names`
    among them in that order; `only_robust` names become `only_robust`, `steps`
    (name -> int) overrides budgets. `restarts` applies to the paper's attacks (and
    raises APGD-CE's in the strong suite); the autoattack suite keeps AutoAttack's.
    `curves=False` (strong suite): minimization attacks run only on what is still robust
    too (no accuracy-against-radius curves)."""
    if suite_name == "autoattack":
        specs = suite.autoattack_suite(dataset, eps=eps, budget=budget,
                                       apgd_steps=apgd_steps, queries=queries)
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


def evaluate(model_paths, *, dataset: str, data_dir, split: str, num_examples: int,
             output_dir: str, specs, batch_size: int = 100, seed: int = 0,
             verbose: bool = True, on_compute=None, suite_name: str = "custom",
             cache_dir: str | None = None, jit_compile: bool = False,
             prune_with: str | None = None, draw_curves: bool = True) -> dict:
    """Evaluates every model; writes all report files (curves.png if `draw_curves`);
    returns the summaries."""
    x, y = data.load_arrays(dataset, split, data_dir)
    x, y = x[:num_examples], y[:num_examples]
    classes = data.DATASETS[dataset]["classes"]
    os.makedirs(output_dir, exist_ok=True)
    code = runner.code_version()
    keys = runner.example_keys(x, y)
    summaries, curves, warnings, models, profiles = {}, {}, {}, {}, {}
    for path in model_paths:
        name = model_name(path)
        while name in models:
            name += "_"
        loaded = load_checked(path, x, classes, dataset)
        weights = loaded.weights_fingerprint
        models[name] = {"path": path, "abspath": os.path.abspath(path),
                        "source": loaded.source, "fingerprint": loaded.fingerprint,
                        "weights_sha256": weights,
                        # what trained it (msd_tf.json of a SavedModel exported by
                        # msd_tf.main; None for other models): msd_tf.protocol
                        "trained_on": loaded.metadata.get("train_split"),
                        "protocol": loaded.metadata.get("protocol")}
        print(f"Model {name}: {os.path.abspath(path)} ({loaded.source}), "
              f"sha256 {loaded.fingerprint}", flush=True)
        warnings[name] = checks.sanity_warnings(loaded.logits_fn, x, y)
        warnings[name] += _trained_on_evaluated(models[name]["trained_on"], split, len(x),
                                                dataset)
        for w in warnings[name]:
            print(f"WARNING [{name}]: {w}", file=sys.stderr, flush=True)
        clean, records, grid = runner.run_suite(
            name, loaded.fingerprint, loaded.logits_fn, x, y, specs, output_dir=output_dir,
            batch_size=batch_size, seed=seed, verbose=verbose, on_compute=on_compute,
            code=code, cache_dir=cache_dir, jit_compile=jit_compile,
            prior_broken=prior_broken(prune_with, name, keys) if prune_with else None,
            seed_key=weights)
        summaries[name] = aggregate.aggregate(clean, records)
        profiles[name] = {n: r["profile"] for n, r in records.items()}
        if verbose:
            print(f"[{name}] where the time went (profile.json):", flush=True)
            print("\n".join(profiling.table(profiles[name])), flush=True)
        report.save_per_example(os.path.join(output_dir, f"per_example_{name}.npz"),
                                clean, records, keys)
        for norm, info in summaries[name]["norms"].items():
            radii = np.linspace(0, 2 * info["eps"], 41)
            panel = curves.setdefault(norm, {"radii": radii, "eps": info["eps"], "models": {}})
            panel["models"][name] = {
                "curve": aggregate.accuracy_at_radii(clean, records, norm, radii,
                                                  minimization_only=True),
                "at_eps": info["acc"]}
        k = runner.GRID_EXAMPLES
        strongest_found = strongest(records, grid)
        preds = {norm: checks.predict(loaded.logits_fn, imgs) if len(imgs) else imgs[:0]
                 for norm, (imgs, _, _) in strongest_found.items()}
        eps = {norm: info["eps"] for norm, info in summaries[name]["norms"].items()}
        report.plot_examples(x[:k], y[:k], strongest_found, os.path.join(output_dir,
                                                                   f"examples_{name}.png"),
                             eps=eps, predictions=preds)
    if draw_curves:
        report.plot_curves(curves, os.path.join(output_dir, "curves.png"))
    extra = {
        "provenance": {
            "models": models, "dataset": dataset,
            "data_dir": os.path.abspath(data_dir) if data_dir else None,
            "split": split, "num_examples": len(x), "data_sha256": fingerprints.of_arrays(x, y),
            "suite": suite_name, "restarts": sorted({s.restarts for s in specs}),
            "pruned_with": os.path.abspath(prune_with) if prune_with else None,
            "seed": seed, "attack_seeds": "per (model, attack, batch): "
            "msd_tf.evaluation.runner.attack_seed(seed, weights_sha256, attack, batch); "
            "per restart within it", "batch_size": batch_size,
            "versions": {k: v for k, v in code.items() if k != "sources"},
            "code_sha256": code["sources"], "git_commit": fingerprints.git_commit(),
            "machine": machine.facts()},
        "suite": [s.__dict__ for s in specs], "warnings": warnings}
    report.write_reports(summaries, output_dir, extra=extra)
    # Apart from results.json, which identical commands reproduce byte for byte.
    with open(os.path.join(output_dir, "profile.json"), "w") as fh:
        json.dump({"machine": extra["provenance"]["machine"], "models": profiles}, fh, indent=2)
    return summaries


def strongest(records, grid):
    """Per threat model, the smallest sound adversarial example of each grid image (at
    any norm: the grid marks those beyond the radius)."""
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
