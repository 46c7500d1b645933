"""`python -m msd_tf.main --flagfile=flags/mnist/msd.cfg [--flag=value ...]`
(installed: `msd-tf-train ...`).

Flags -> TrainConfig -> process settings and strategy -> experiment.train (resumable)
-> SavedModel + summary.json. Bad input ends in one `error:` line, exit code 2.

With `--deterministic` (the default) TF op determinism is enabled and graph ops run one
at a time (one inter-op thread), so a seeded run, and a run resumed after a kill, are
bit-exact; `--nodeterministic` lets independent ops run concurrently.
"""

import dataclasses
import os

from absl import app, flags, logging

from msd_tf import cli

_COST = flags.DEFINE_bool(
    "cost", False, "Print the compute of one training step of these flags (forward and "
    "backward example-passes per training example, no attack stopping early) as one JSON "
    "line and exit: no data read, nothing trained.")


def main(argv):
    if len(argv) > 1:
        cli.fail(f"unexpected arguments {argv[1:]}; flags are written --name=value.")
    from msd_tf import data, protocol
    from msd_tf import flags as msd_flags

    try:  # the flags, the config and the data's splits, before TensorFlow is imported
        config = msd_flags.to_config()
    except ValueError as e:
        cli.fail(str(e))
    if not _COST.value:
        try:
            train_split, eval_split, note = protocol.resolve(
                config.dataset, config.data_dir, config.train_split, config.eval_split)
        except (ValueError, data.DataError) as e:
            cli.fail(str(e))
        if note:
            print(f"note: {note}", flush=True)
            config = dataclasses.replace(config, train_split=train_split)
    import tensorflow as tf

    from msd_tf import experiment
    from msd_tf.benchmarks import budgets
    from msd_tf.distribute import make_strategy

    if _COST.value:
        import json

        print(json.dumps({"epochs": config.epochs, "lr_epochs": list(config.lr_epochs),
                          **budgets.step_cost(config)}))
        return
    logging.info("Training configuration:\n%s", config.to_json())
    cli.configure_process(deterministic=config.deterministic, seed=config.seed,
                          precision=config.precision)
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
    from msd_tf import flags as msd_flags

    msd_flags.define(flags.FLAGS)
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
