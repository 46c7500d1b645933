"""`python -m msd_tf.main --flagfile=flags/mnist/msd.cfg [--flag=value ...]`.

Flags -> TrainConfig -> strategy -> fit (resumable) -> SavedModel + summary.json.

Determinism is decided before TensorFlow is imported: with `--deterministic` (the
default) oneDNN's CPU kernels, which reorder float sums between runs, are switched
off (TF_ENABLE_ONEDNN_OPTS=0; about 2.5x slower on a CPU, no effect on GPUs) and TF
op determinism is enabled, so a seeded run, and a run resumed after a kill, are
bit-exact. `--nodeterministic` keeps the fast kernels.
"""

import os
import sys

from absl import app
from absl import flags as absl_flags


def _wants_determinism(argv) -> bool:
    """Reads --[no]deterministic (flagfiles included) without importing TensorFlow."""
    fv = absl_flags.FlagValues()
    absl_flags.DEFINE_bool("deterministic", True, "", flag_values=fv)
    try:
        fv(list(argv), known_only=True)
    except absl_flags.Error:
        return True  # the full parse reports the problem
    return fv.deterministic


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from msd_tf import data, experiment
    from msd_tf import flags as msd_flags

    try:
        config = msd_flags.to_config()
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(config.to_json())
    try:
        summary = experiment.train(config)
    except (data.DataError, experiment.RunError) as e:
        sys.exit(f"error: {e}")
    print(f"Clean accuracy on {summary['eval_split']}: {summary['eval_clean_acc']:.4f}; "
          f"SavedModel: {summary['saved_model']}")


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if _wants_determinism(sys.argv):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    from msd_tf import flags as msd_flags  # noqa: F401 - defines the flags (imports TF)

    app.run(main)


if __name__ == "__main__":
    run()
