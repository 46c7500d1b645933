"""`python -m msd_tf.tune --recipe=flags/mnist/S/msd.cfg --budget=S --variant=name=flags ...`
(installed: `msd-tf-tune`): a recipe search on digits held out of the training split
(`msd_tf.benchmarks.search`). The command line only: flags -> search -> exit code.
"""

import os

from absl import flags

from msd_tf import cli

_RECIPE = flags.DEFINE_list("recipe", None, "The recipe: a flagfile (and overrides), "
                            "comma-separated msd_tf.main flags, e.g. "
                            "--recipe=--flagfile=flags/mnist/S/msd.cfg.")
_VARIANT = flags.DEFINE_multi_string("variant", [], "name=flags (space-separated) added "
                                     "after the recipe; repeat for several.")
_GRID = flags.DEFINE_enum("grid", None, ["c2"], "Add a variant for every point of a grid: c2, "
                          "the paper's MNIST step sizes (appendix C.2: alpha_1 in {0.75, "
                          "0.8, 1.0, 2.0}, alpha_2 in {0.1, 0.2}, alpha_inf in {0.01, 0.02, "
                          "0.03}; 24 variants).")
_BUDGET = flags.DEFINE_string(
    "budget", None, "S, M (msd_tf.benchmarks.budgets) or a number of example-passes: every "
    "variant's epochs re-cut to spend it (times --share); unset: each variant's own epochs.")
_SHARE = flags.DEFINE_float("share", 1.0, "The recipe's share of the budget (a P_inf "
                            "pre-training: 2/3).", lower_bound=0)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Offline data (the training split must "
                                "be there: tuning digits are held out of it).")
_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train[:55000]", "Digits trained on.")
_TUNE_SPLIT = flags.DEFINE_string("tune_split", "train[55000:]",
                                  "Digits evaluated: training-split digits never trained on.")
_NUM = flags.DEFINE_integer("num_examples", 1000, "Tuning digits evaluated.", lower_bound=1)
_ATTACKS = flags.DEFINE_list("attacks", None, "The tuning evaluation's attacks "
                             "(default: APGD-CE and APGD-T per norm).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/tune", "Run folders and tune.md.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    from msd_tf import data
    from msd_tf.benchmarks import budgets, runs, search

    if not _RECIPE.value:
        cli.fail("--recipe is required, e.g. --recipe=--flagfile=flags/mnist/S/msd.cfg.")
    variants = {}
    for v in _VARIANT.value:
        name, _, extra = v.partition("=")
        if not name or name in variants or name == "base" or os.sep in name:
            cli.fail(f"--variant {v!r}: give each a new name (not base), as name=flags.")
        variants[name] = extra.split()
    if _GRID.value:
        variants.update(search.grid_variants(search.GRIDS[_GRID.value]))
    budget = _BUDGET.value
    if budget is not None:
        try:
            budget = budgets.BUDGETS[budget] if budget in budgets.BUDGETS else float(budget)
        except ValueError:
            cli.fail(f"--budget={budget}: give S, M or a number of example-passes.")
        if budget <= 0:
            cli.fail(f"--budget={budget} must be > 0.")
        budget *= _SHARE.value
    kw = {"attacks": tuple(_ATTACKS.value)} if _ATTACKS.value else {}
    s = search.Search(tuple(_RECIPE.value), variants, _OUTPUT_DIR.value, _DATA_DIR.value,
                      budget, _TRAIN_SPLIT.value, _TUNE_SPLIT.value, _NUM.value,
                      dry_run=_DRY_RUN.value, **kw)
    try:
        search.run(s)
    except (runs.BenchmarkError, data.DataError, ValueError) as e:
        cli.fail(str(e))


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
