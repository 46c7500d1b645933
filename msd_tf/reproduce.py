"""`python -m msd_tf.reproduce --table=3|union --scale=S|M --data_dir=../shared/data/mnist`:
a paper table, or the union benchmark, from one command.

At budgets S and M (`msd_tf.benchmarks`) every model is one unit, trained on the paper's
protocol (the 60,000 training digits; a folder holding only the test split trains on
test[1000:] and says so) and evaluated on the first 1000 test digits by
flags/mnist/eval_benchmark.cfg. Its small result is written to
`<results_dir>/<scale>/<model>.json`; a result there whose key (recipe, data, evaluation,
behaviour version) matches is reused, so the tables in docs/results are assembled from
per-model results committed by earlier runs; a changed recipe is trained again.

`--scale=paper` runs the paper's own flagfiles (Table 3, Table 4, the union benchmark on
CIFAR-10; GPU hours) into `--output_dir` (`msd_tf.benchmarks.paper_scale`): every step a
subprocess of the commands a user types, with its output in `<output_dir>/logs/`; killed
at any point, the same command continues.
"""

import os

from absl import flags

from msd_tf import cli

_TABLE = flags.DEFINE_enum(
    "table", "3", ["3", "4", "5", "union", "F", "filters", "autoattack"],
    "Paper table: 3 (MNIST), 4 "
    "(CIFAR-10), 5 (Table 3's MSD under Tramer and Boneh's evaluation); union: the "
    "compute-matched union benchmark (MSD, MAX, AVG, E-AT, RAMP, and E-AT / RAMP "
    "fine-tuned from P_inf, each on MSD's training compute), MNIST; F: appendix "
    "F (MSD on l_inf + l_1 only, evaluated on all three norms); filters: appendix E "
    "(first-layer filters of Table 3's models and of MSD/MAX/AVG at alpha_inf 0.01, 0.03); "
    "autoattack: the union benchmark's best model against the original AutoAttack "
    "(PyTorch; scripts/compare_autoattack.py).")
_SCALE = flags.DEFINE_enum(
    "scale", "S", ["S", "M", "paper", "smoke"],
    "S, M: the budgets of msd_tf.benchmarks.budgets (flags/mnist/S, flags/mnist/M; per-model "
    "results committed under --results_dir and reused while current); paper: the paper's "
    "flagfiles (GPU hours); smoke: seconds, meaningless numbers (tests).")
_MODELS = flags.DEFINE_list("models", None, "Models to train and evaluate (default: all).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Offline data (e.g. ../shared/data/mnist); a folder with only the "
    "test split trains on test[1000:] instead of the training split and says so. Unset: "
    "tensorflow-datasets.")
_RESULTS_DIR = flags.DEFINE_string(
    "results_dir", "docs/results", "S, M, smoke: per-model results (<results_dir>/<scale>/"
    "<model>.json, reused while their key matches) and the tables assembled from them.")
_WORK_DIR = flags.DEFINE_string(
    "work_dir", "runs/benchmarks", "S, M, smoke: run folders (<work_dir>/<scale>/...).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: runs/table<N>_<scale>.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, run nothing.")
_COMMITTED_ONLY = flags.DEFINE_bool(
    "committed_only", False, "S, M: train nothing; assemble the table from the current "
    "committed results alone, naming the models not measured yet.")
_TORCH_PYTHON = flags.DEFINE_string(
    "torch_python", None, "--table=autoattack: a Python with torch and pyautoattack==0.2.0 "
    "(default: a virtual environment made on first use, scripts/compare_autoattack.py).")


def _budget(table: str, scale_name: str) -> None:
    """Budgets S, M (and smoke): units with committed results (msd_tf.benchmarks)."""
    from msd_tf.benchmarks import reports, runs, tables
    from msd_tf.benchmarks.units import Context

    bench = tables.BENCHMARKS.get((table, scale_name))
    if bench is None:
        raise runs.BenchmarkError(
            f"--table={table} has no --scale={scale_name}; known: "
            f"{sorted('--table=%s --scale=%s' % k for k in tables.BENCHMARKS)}.")
    data_dir = _DATA_DIR.value
    if data_dir and not os.path.exists(data_dir):
        raise runs.BenchmarkError(f"--data_dir {data_dir}: no such file or folder.")
    ctx = Context(scale_name, bench.evaluation, data_dir,
                  os.path.join(_RESULTS_DIR.value, scale_name),
                  os.path.join(_WORK_DIR.value, scale_name), bench.budget, _DRY_RUN.value,
                  tag=bench.tag)
    if table == "autoattack":
        from msd_tf.benchmarks import autoattack

        if _COMMITTED_ONLY.value:
            raise runs.BenchmarkError("--committed_only applies to the tables; "
                                      "--table=autoattack reads its committed comparisons "
                                      "anyway and runs only the stale ones.")
        extra = (f"--torch_python={_TORCH_PYTHON.value}",) if _TORCH_PYTHON.value else ()
        comparisons = autoattack.produce(bench, ctx, _MODELS.value, extra)
        if not _DRY_RUN.value:
            _show(autoattack.write(bench, comparisons, _RESULTS_DIR.value))
        return
    results = tables.produce_all(bench, ctx, _MODELS.value, committed_only=_COMMITTED_ONLY.value)
    if not _DRY_RUN.value:
        _show(reports.write(bench, results, _RESULTS_DIR.value))


def _paper_scale(table: str) -> None:
    """The paper's own flagfiles (GPU hours): msd_tf.benchmarks.paper_scale."""
    from msd_tf.benchmarks import paper_scale

    name = "union_paper" if table == "union" else f"table{table}_paper"
    request = paper_scale.Request(_MODELS.value, _DATA_DIR.value,
                                  _OUTPUT_DIR.value or os.path.join("runs", name),
                                  _DRY_RUN.value)
    paths = (paper_scale.union_benchmark(request) if table == "union"
             else paper_scale.table(table, request))
    if paths is not None:
        _show(paths)


def _show(paths: dict) -> None:
    with open(paths["md"]) as f:
        print(f.read())


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    from msd_tf import data
    from msd_tf.benchmarks import runs

    try:
        if _SCALE.value == "paper":
            _paper_scale(_TABLE.value)
        else:
            _budget(_TABLE.value, _SCALE.value)
    except (runs.BenchmarkError, data.DataError, ValueError) as e:
        cli.fail(str(e))


def run():
    cli.run_app(main)


if __name__ == "__main__":
    run()
