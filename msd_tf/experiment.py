"""One training run from a `TrainConfig`, in named steps:

  load_inputs -> check_output_dir -> build -> restore -> write_run_files -> fit ->
  export_and_report

Nothing is written before the data, the settings, the model and the output folder
have been checked, and a folder counts as an experiment (whose settings a later
command must match) only once it holds a checkpoint: a failed start never locks the
corrected command out.

Resumption: a checkpoint (weights, optimizer state and step, epoch) is written at
the end of every epoch (`msd_tf.checkpoints`: found from the files, corrupt ones
skipped and moved aside, never overwritten). Started again with the same output
folder, a run restores the newest checkpoint that restores and continues from the
next epoch; the learning-rate schedule and the attack seeds derive from the
optimizer step and the data order from the epoch, so the resumed run follows the
same path as an uninterrupted one. A run killed mid-epoch repeats that epoch.

Process-wide TensorFlow settings (determinism, threads, seeds) and the distribution
strategy are chosen by the entry point (`msd_tf.main`), not here.
"""

import csv
import dataclasses
import json
import os
import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from msd_tf import checkpoints, compute, data, fingerprints, machine, protocol
from msd_tf.adversaries import Adversary, make_adversary
from msd_tf.config import TrainConfig, experiment_of
from msd_tf.distribute import worker_dir
from msd_tf.export import export_saved_model, load_weights_into
from msd_tf.models import build_model
from msd_tf.optimizers import make_optimizer
from msd_tf.training import AdversarialTrainer


class RunError(RuntimeError):
    """The output folder or a checkpoint cannot be used; the message says why."""


@dataclasses.dataclass
class Inputs:
    """The loaded, checked data of a run."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    steps_per_epoch: int
    train_sha256: str


@dataclasses.dataclass
class Parts:
    """Everything `build` creates (inside the strategy's scope)."""

    model: keras.Model
    adversary: Adversary
    optimizer: keras.optimizers.Optimizer
    trainer: AdversarialTrainer
    epoch: tf.Variable
    checkpoint: tf.train.Checkpoint


def load_inputs(config: TrainConfig) -> Inputs:
    """Loads and checks the training and evaluation splits.

    Raises:
      data.DataError: unreadable data, or a batch larger than the training split.
    """
    x_train, y_train = data.load_arrays(config.dataset, config.train_split, config.data_dir)
    x_eval, y_eval = data.load_arrays(config.dataset, config.eval_split, config.data_dir)
    if len(x_train) < config.batch_size:
        raise data.DataError(
            f"--batch_size={config.batch_size} is larger than the training split "
            f"--train_split={config.train_split} ({len(x_train)} examples); lower "
            "--batch_size or use a larger --train_split.")
    steps_per_epoch = config.steps_per_epoch or len(x_train) // config.batch_size
    return Inputs(x_train, y_train, x_eval, y_eval, steps_per_epoch,
                  fingerprints.of_arrays(x_train, y_train))


def check_output_dir(config: TrainConfig, train_sha256: str) -> None:
    """Refuses a folder whose checkpoints belong to a different experiment.

    A folder without checkpoints is not an experiment yet (a failed start may have
    left a config.json there); it is used as it is.
    """
    if not checkpoints.list_checkpoints(os.path.join(config.output_dir, "checkpoints")):
        return
    path = os.path.join(config.output_dir, "config.json")
    if not os.path.exists(path):
        raise RunError(f"--output_dir {config.output_dir} holds checkpoints but no "
                       "config.json, so their experiment is unknown. Use a new "
                       "--output_dir (or put the run's config.json back).")
    try:
        with open(path) as f:
            old = experiment_of(json.load(f))
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError) as e:
        raise RunError(f"{path} is corrupt ({e}); put the run's config.json back or use "
                       "a new --output_dir.") from e
    new = config.experiment(train_sha256)
    if "train_data_sha256" not in old:  # written before data fingerprints existed
        old["train_data_sha256"] = new["train_data_sha256"]
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise RunError(f"--output_dir {config.output_dir} holds a different experiment "
                       f"({details}). Use a new --output_dir.")


def adversary_of(config: TrainConfig) -> Adversary:
    """The adversary `config` trains with (`TrainConfig.adversary_settings`)."""
    return make_adversary(**config.adversary_settings())


def build(config: TrainConfig, strategy: tf.distribute.Strategy, steps_per_epoch: int) -> Parts:
    """Model, adversary, optimizer (built, so that its slots exist before a restore) and
    trainer, each from its registry by name.

    Raises:
      RunError: a name or setting a registry refuses (the message lists the known names).
    """
    info = data.DATASETS[config.dataset]
    with strategy.scope():
        try:
            model = build_model(config.model, info["shape"], info["classes"])
            adversary = adversary_of(config)
            optimizer = make_optimizer(config.optimizer, lr_epochs=config.lr_epochs,
                                       lr_values=config.lr_values,
                                       steps_per_epoch=steps_per_epoch,
                                       momentum=config.momentum, ema=config.ema)
        except ValueError as e:
            raise RunError(str(e)) from e
        trainer = AdversarialTrainer(model, adversary, seed=config.seed,
                                     weight_decay=config.weight_decay)
        trainer.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        jit_compile=config.jit_compile)
        # Under mixed_float16, compile wraps it in a LossScaleOptimizer (loss scaling):
        # that is the one to build and checkpoint.
        optimizer = trainer.optimizer
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch,
                                     adversary=adversary)
    return Parts(model, adversary, optimizer, trainer, epoch, checkpoint)


def restore(config: TrainConfig, parts: Parts, log: Callable[[str], None] = logging.info) -> int:
    """Restores the newest usable checkpoint (or `--init_from`); returns the start epoch."""
    folder = os.path.join(config.output_dir, "checkpoints")
    try:
        found = checkpoints.restore_newest(parts.checkpoint, folder, log=log)
    except checkpoints.RestoreError as e:
        raise RunError(str(e)) from e
    if found is None and config.init_from:
        try:
            load_weights_into(parts.model, config.init_from)
        except ValueError as e:
            raise RunError(str(e)) from e
        log(f"Fine-tuning from {config.init_from}.")
    start = int(parts.epoch.numpy())
    if start:
        log(f"Resuming {config.output_dir} from epoch {start} "
            f"(optimizer step {int(parts.optimizer.iterations.numpy())}).")
    return start


def _write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def write_run_files(config: TrainConfig, train_sha256: str, start: int) -> None:
    """config.json (with the data fingerprint), flags.txt (resolved flags + git commit);
    on resumption, drops history.csv rows of epochs the restored checkpoint had not
    reached (they are trained again)."""
    os.makedirs(config.output_dir, exist_ok=True)
    saved = {**json.loads(config.to_json()), "train_data_sha256": train_sha256}
    _write_atomically(os.path.join(config.output_dir, "config.json"),
                      json.dumps(saved, indent=2, sort_keys=True))
    lines = []
    for k, v in json.loads(config.to_json()).items():
        if v is not None:
            v = ",".join(map(str, v)) if isinstance(v, list) else v
            lines.append(f"--{k}={v}\n")
    lines.append(f"# git commit: {fingerprints.git_commit()}\n")
    _write_atomically(os.path.join(config.output_dir, "flags.txt"), "".join(lines))
    history = os.path.join(config.output_dir, "history.csv")
    if os.path.exists(history):
        with open(history, newline="") as f:
            rows = list(csv.reader(f))
        keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) < start]
        if rows and len(keep) != len(rows):
            with open(history + ".tmp", "w", newline="") as f:
                csv.writer(f).writerows(keep)
            os.replace(history + ".tmp", history)


class _SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, writer: checkpoints.CheckpointWriter, epoch: tf.Variable):
        super().__init__()
        self.writer, self.epoch = writer, epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.writer.save(epoch + 1)


def _fit_multi_worker(trainer, strategy, ds, config, start, steps_per_epoch, callbacks):
    """Our own loop over `trainer.train_step` for MultiWorkerMirroredStrategy.

    Keras 3's `fit` fails under that strategy ("Attempt to convert a value (PerReplica
    ...)", keras-team/keras#20585); the train step itself is strategy-agnostic, so we
    run it with `strategy.run` and drive the same callbacks as `fit` (checkpoint, CSV
    and TensorBoard logs) at the end of every epoch.
    """
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step():
        logs = strategy.run(trainer.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    callbacks = keras.callbacks.CallbackList(callbacks, model=trainer)
    history = {}
    callbacks.on_train_begin()
    for e in range(start, config.epochs):
        t0 = time.time()
        callbacks.on_epoch_begin(e)
        for _ in range(steps_per_epoch):
            logs = step()
        logs = {k: float(v) for k, v in logs.items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        logging.info(f"Epoch {e + 1}/{config.epochs} - {time.time() - t0:.0f}s - "
                     + " - ".join(f"{k}: {v:.4f}" for k, v in sorted(logs.items())))
        callbacks.on_epoch_end(e, logs)
        for m in trainer.metrics:
            m.reset_state()
    callbacks.on_train_end()
    return history


def fit(config: TrainConfig, strategy: tf.distribute.Strategy, parts: Parts, inputs: Inputs,
        start: int, *, verbose="auto") -> dict:
    """Trains from epoch `start` to `config.epochs`; returns the history."""
    if start >= config.epochs:
        return {}
    # Checkpoints are written at the end of epochs, so a run resumed at epoch `start` has
    # consumed start x steps_per_epoch batches. Not optimizer.iterations: under
    # mixed_float16 a step with non-finite gradients is skipped without counting
    # (Keras' LossScaleOptimizer), and the stream would resume too early.
    ds = data.train_dataset(inputs.x_train, inputs.y_train, batch_size=config.batch_size,
                            seed=config.seed, start_step=start * inputs.steps_per_epoch,
                            augment=config.augment, shift=config.shift)
    writer = checkpoints.CheckpointWriter(parts.checkpoint,
                                          os.path.join(config.output_dir, "checkpoints"),
                                          keep=config.keep_checkpoints)
    callbacks = [
        _SaveEachEpoch(writer, parts.epoch),
        keras.callbacks.CSVLogger(os.path.join(config.output_dir, "history.csv"),
                                  append=True),
        keras.callbacks.TensorBoard(os.path.join(config.output_dir, "logs"), update_freq=50),
    ]
    if config.strategy == "multi_worker":  # trainer.fit would add the adversary's own
        return _fit_multi_worker(parts.trainer, strategy, ds, config, start,
                                 inputs.steps_per_epoch,
                                 parts.adversary.callbacks() + callbacks)
    return parts.trainer.fit(ds, epochs=config.epochs, initial_epoch=start,
                             steps_per_epoch=inputs.steps_per_epoch, callbacks=callbacks,
                             shuffle=False, verbose=verbose).history


def _exported_checkpoint(export_dir: str) -> str | None:
    try:
        with open(os.path.join(export_dir, "msd_tf.json")) as f:
            return json.load(f).get("checkpoint_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def float32_copy(config: TrainConfig, model: keras.Model) -> keras.Model:
    """`model` itself under float32, else the same architecture built under float32 with
    its weights. A model trained in mixed precision is exported (and so evaluated) in
    float32: a 16-bit forward pass rounds the input gradient the attacks follow, which
    would make the evaluation weaker, not the model more robust.
    """
    if config.precision == "float32":
        return model
    info = data.DATASETS[config.dataset]
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = build_model(config.model, info["shape"], info["classes"])
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def export_and_report(config: TrainConfig, parts: Parts, inputs: Inputs, history: dict,
                      seconds: float, log: Callable[[str], None] = logging.info) -> dict:
    """Writes saved_model/ and summary.json (clean accuracy of the exported weights).

    The SavedModel records the fingerprint of the checkpoint it was exported from; a
    finished run started again does not export again (a new export's graph bytes
    differ, which would needlessly invalidate evaluation caches keyed by content).
    """
    export_dir = os.path.join(config.output_dir, "saved_model")
    newest = checkpoints.list_checkpoints(os.path.join(config.output_dir, "checkpoints"))
    source = fingerprints.of_checkpoint(newest[0][1]) if newest else None
    served = float32_copy(config, parts.model)
    if source and source == _exported_checkpoint(export_dir) and os.path.isfile(
            os.path.join(export_dir, "saved_model.pb")):
        log(f"{export_dir} is up to date (exported from {os.path.basename(newest[0][1])}).")
    else:
        export_saved_model(served, export_dir,
                           metadata={"dataset": config.dataset, "model": config.model,
                                     "adversary": config.adversary,
                                     "precision": config.precision,
                                     "train_split": config.train_split,
                                     "protocol": protocol.name_of(config.train_split,
                                                                  config.eval_split),
                                     "checkpoint_sha256": source})
    # Plain forward passes (Keras' evaluate() fails under MultiWorkerMirroredStrategy).
    b = config.batch_size
    correct = [tf.argmax(served(inputs.x_eval[i:i + b], training=False), axis=1).numpy()
               == inputs.y_eval[i:i + b] for i in range(0, len(inputs.x_eval), b)]
    summary = {
        "config": json.loads(config.to_json()),
        "epochs_done": int(parts.epoch.numpy()),
        "train_seconds_this_run": round(seconds, 1),
        "last_epoch_metrics": {k: float(v[-1]) for k, v in history.items()},
        "eval_split": config.eval_split,
        # "paper" (trained on the training split, evaluated on test[:1000]), "test-only"
        # (a folder without the training split), "tuning" or "custom": msd_tf.protocol.
        "protocol": protocol.name_of(config.train_split, config.eval_split),
        "train_split": config.train_split,
        "eval_clean_acc": float(np.mean(np.concatenate(correct))) if correct else 0.0,
        "saved_model": export_dir,
        "machine": machine.facts(),  # what train_seconds_this_run was measured on
        # Machine-independent: example-passes of the model over the whole run (resumed
        # runs included), attacks and the clean copy of RAMP's projection included.
        "compute": {**compute.total(os.path.join(config.output_dir, "history.csv")),
                    "examples_per_epoch": inputs.steps_per_epoch * config.batch_size},
    }
    _write_atomically(os.path.join(config.output_dir, "summary.json"),
                      json.dumps(summary, indent=2))
    return summary


def train(config: TrainConfig, strategy: tf.distribute.Strategy | None = None, *,
          verbose="auto", log: Callable[[str], None] = logging.info) -> dict:
    """Runs (or resumes) a training run; returns the summary also written to summary.json.

    Raises:
      data.DataError: the data cannot be used.
      RunError: the output folder or its checkpoints cannot be used.
    """
    strategy = strategy or tf.distribute.get_strategy()
    config = dataclasses.replace(config, output_dir=worker_dir(strategy, config.output_dir))
    inputs = load_inputs(config)
    check_output_dir(config, inputs.train_sha256)
    if config.init_from and not os.path.exists(config.init_from):
        raise RunError(f"--init_from {config.init_from}: no such file or folder.")
    parts = build(config, strategy, inputs.steps_per_epoch)
    start = restore(config, parts, log)
    write_run_files(config, inputs.train_sha256, start)
    t0 = time.time()
    history = fit(config, strategy, parts, inputs, start, verbose=verbose)
    # --ema: the model exported is the weights' average. Keras' fit writes it in already;
    # the multi-worker loop and a finished run started again do not (writing it twice is
    # the same). Checkpoints hold the last weights and the average, so a run resumes on both.
    with strategy.scope():
        parts.optimizer.finalize_variable_values(parts.model.trainable_variables)
    return export_and_report(config, parts, inputs, history, time.time() - t0, log)
