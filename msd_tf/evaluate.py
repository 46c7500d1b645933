"""`python -m msd_tf.evaluate --models=runs/mnist/msd/saved_model[,...] [--flagfile=...]`
(installed: `msd-tf-evaluate ...`).

Runs the paper's attack suite (PAPER_NOTES section 7; `--suite=strong` adds AutoAttack's
standard attacks per norm, APGD-CE, APGD-T, FAB-T and Square, and Sparse-RS for l_1;
`--suite=autoattack` runs AutoAttack's standard attacks alone; `--suite=tb19` Tramer and
Boneh's, the paper's Table 5) on
SavedModels (or training-run folders, whose newest checkpoint that restores is
loaded) and writes, in `--output_dir`: results.md (laid out like Table 3, one column
per model), results.json (numbers and provenance), results.csv, one per-example npz
per model, accuracy-against-radius plots (curves.png; not with --nocurves), a grid of
clean and adversarial examples per model, and profile.json (seconds, examples attacked,
forward and backward passes per attack, with the machine). Results are cached by
content (model, data, attack, seed, code) and every random source is seeded, so a
killed evaluation resumes and identical commands give identical results.
`--corruptions` reports CIFAR-10-C accuracy instead (Table 7).

This module is the command line only (flags -> `msd_tf.evaluation.pipeline` -> exit
code); the pipeline is a library usable from Python without absl.

A SavedModel is a program: loading one runs its graph. Evaluate only models you trust.
"""

import os

from absl import flags

from msd_tf import cli
from msd_tf import common_flags as common
from msd_tf.threats import NORMS, QUERIES

common.define(flags.FLAGS)

_MODELS = flags.DEFINE_list("models", None, "SavedModel folders or training-run folders.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 1000, "First N examples of the split.",
                                     lower_bound=1)
_RESTARTS = flags.DEFINE_integer("restarts", 10, "Random restarts per attack.", lower_bound=1)
_SUITE = flags.DEFINE_enum(
    "suite", "paper", ["paper", "strong", "autoattack", "tb19"],
    "paper: every attack of section 7; strong: plus, per norm and on the examples still "
    "robust, AutoAttack's standard APGD-CE, APGD-T, FAB-T and Square, and Sparse-RS for l_1; "
    "autoattack: AutoAttack's standard version alone (APGD-CE, APGD-T, FAB-T, Square); "
    "tb19: Tramer and Boneh's MNIST attacks (Table 5: PGD and HopSkipJump l_inf; PGD, "
    "Boundary and C&W l_2; SLIDE, Pointwise and EAD l_1), each run once (--restarts "
    "does not apply).")
_APGD_STEPS = flags.DEFINE_integer("apgd_steps", 100, "APGD iterations (strong suite).",
                                   lower_bound=1)
_SQUARE_QUERIES = flags.DEFINE_integer(
    "square_queries", QUERIES, "Queries of Square and Sparse-RS (strong and autoattack "
    f"suites; AutoAttack: {QUERIES}).", lower_bound=1)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Where results are cached (default: <output_dir>/cache); evaluations "
    "may share one: results are keyed by content.")
_ATTACKS = flags.DEFINE_list("attacks", None,
                             "Run only these attacks of the suite, in this order.")
_ONLY_ROBUST = flags.DEFINE_list(
    "only_robust", [], "Run these attacks only on the examples every earlier attack of "
    "their norm (and --prune_with) left robust (AutoAttack's protocol).")
_ATTACK_STEPS = flags.DEFINE_list(
    "attack_steps", [], "Budget overrides, name:steps (iterations or queries), e.g. "
    "boundary:1000,cw_l2:200. The report's provenance records them.")
_PRUNE_WITH = flags.DEFINE_string(
    "prune_with", None, "An earlier evaluation's --output_dir of the same models and "
    "examples: --only_robust attacks skip the examples it broke.")
_BUDGET = flags.DEFINE_enum("budget", "paper", ["paper", "fast"],
                            "fast: a few iterations per attack (smoke tests only).")
_EVAL_EPS = {n: flags.DEFINE_float(f"eval_{n}_eps", None, f"{n} radius (default: paper's).")
             for n in NORMS}
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", 100, "Examples per attack batch.",
                                   lower_bound=1)
_CURVES = flags.DEFINE_boolean(
    "curves", True, "Run the minimization attacks on every clean example and draw "
    "curves.png (accuracy against radius). --nocurves (strong suite): they too run only "
    "on the examples still robust at the radius; the robust flags are the same, for less "
    "work, and no curves are drawn.")
_CORRUPTIONS = flags.DEFINE_enum(
    "corruptions", "none", ["none", "standard", "all"],
    "CIFAR-10-C accuracy instead of attacks (Table 7): the standard 15 corruptions or all "
    "19, every severity, from --data_dir (CIFAR-10-C as distributed: <corruption>.npy and "
    "labels.npy) or, unset, tensorflow-datasets' cifar10_corrupted (about 2.9 GB).")

for _n in NORMS:
    flags.register_validator(f"eval_{_n}_eps", lambda v: v is None or v > 0,
                             message=f"--eval_{_n}_eps must be > 0")


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    f = flags.FLAGS
    if not _MODELS.value:
        cli.fail("--models is required (SavedModel or training-run folders, comma-separated).")
    cli.configure_process(deterministic=f.deterministic)
    from msd_tf import data
    from msd_tf.evaluation import pipeline

    try:
        if _CORRUPTIONS.value != "none":
            from msd_tf.benchmarks import paper

            pipeline.evaluate_corruptions(_MODELS.value, dataset=f.dataset,
                                          output_dir=f.output_dir, which=_CORRUPTIONS.value,
                                          num_examples=_NUM_EXAMPLES.value,
                                          data_dir=f.data_dir, paper=paper.TABLE_7)
            with open(os.path.join(f.output_dir, "corruptions.md")) as fh:
                print(fh.read())
            return
        eps = {n: h.value for n, h in _EVAL_EPS.items() if h.value is not None}
        specs = pipeline.build_suite(
            f.dataset, _ATTACKS.value, restarts=_RESTARTS.value, suite_name=_SUITE.value,
            budget=_BUDGET.value, eps=eps, apgd_steps=_APGD_STEPS.value,
            queries=_SQUARE_QUERIES.value, only_robust=_ONLY_ROBUST.value,
            curves=_CURVES.value, steps=pipeline.parse_attack_steps(_ATTACK_STEPS.value))
        from msd_tf.evaluation.records import EvalConfig

        config = EvalConfig(
            f.dataset, specs, split=f.eval_split, num_examples=_NUM_EXAMPLES.value,
            data_dir=f.data_dir, output_dir=f.output_dir, suite_name=_SUITE.value,
            batch_size=_EVAL_BATCH.value, seed=f.seed, cache_dir=_CACHE_DIR.value,
            jit_compile=f.jit_compile, prune_with=_PRUNE_WITH.value, draw_curves=_CURVES.value)
        result = pipeline.evaluate(_MODELS.value, config)
    except (pipeline.EvalError, data.DataError) as e:
        cli.fail(str(e))
    print(result.markdown)
    for name, model in result.models.items():  # last, where a reader of the output looks
        for w in model.warnings:
            print(f"WARNING [{name}]: {w}", flush=True)


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
