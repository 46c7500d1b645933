"""`python -m msd_tf.main --flagfile=flags/mnist/msd.cfg [--flag=value ...]`
(installed: `msd-tf-train ...`).

Flags -> TrainConfig -> process settings and strategy -> experiment.train (resumable)
-> SavedModel + summary.json. Bad input ends in one `error:` line, exit code 2.

With `--deterministic` (the default) TF op determinism is enabled and graph ops run one
at a time (one inter-op thread), so a seeded run, and a run resumed after a kill, are
bit-exact; `--nodeterministic` lets independent ops run concurrently.
"""

import os

from absl import app, logging

from msd_tf import cli, machine


def configure_process(config) -> None:
    """Process-wide TensorFlow settings of a run: determinism, threads, seeds, and the
    Keras dtype policy (`--precision`).

    Measured on the 2-core CPU (2026-11-27): without these, two identical 60-step MSD
    runs differed by 5e-3 in the weights (concurrent ops reorder float sums, and the
    attacks' sign / top-k / argmax amplify it); with them, 3 of 3 MNIST pairs and a
    PreAct ResNet-18 pair were bit-identical with oneDNN's kernels on, at no measurable
    cost (28 s vs 27 s for 40 steps; switching oneDNN off, as before, took 48 s).
    """
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")  # TF's INFO lines would bury our messages
    machine.warn_if_onednn_off()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
        tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.precision)


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    import tensorflow as tf

    from msd_tf import data, experiment
    from msd_tf import flags as msd_flags
    from msd_tf.distribute import make_strategy

    try:
        config = msd_flags.to_config()
    except ValueError as e:
        cli.fail(str(e))
    logging.info("Training configuration:\n%s", config.to_json())
    configure_process(config)
    try:
        summary = experiment.train(config, make_strategy(config.strategy))
    except (data.DataError, experiment.RunError) as e:
        cli.fail(str(e))
    except tf.errors.UnimplementedError as e:
        message = cli.nondeterministic_op(e)
        if message is None:
            raise
        cli.fail(message)
    print(f"Clean accuracy on {summary['eval_split']}: {summary['eval_clean_acc']:.4f}; "
          f"SavedModel: {summary['saved_model']}")


def run():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from msd_tf import flags as msd_flags  # noqa: F401 - defines the flags (imports TF)

    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
