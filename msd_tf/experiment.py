"""One training run from a `TrainConfig`: data -> strategy -> fit -> checkpoints -> export.

Resumption: a checkpoint (weights, optimizer state and step, epoch) is written at
the end of every epoch. Started again with the same output folder, a run restores
the latest one and continues from the next epoch; the learning-rate schedule and
the attack seeds derive from the optimizer step and the data order from the
epoch, so the resumed run follows the same path as an uninterrupted one. A run
killed mid-epoch repeats that epoch from its start.
"""

import dataclasses
import json
import os
import subprocess
import time

import keras
import numpy as np
import tensorflow as tf

from msd_tf import data, schedules
from msd_tf.config import TrainConfig
from msd_tf.export import export_saved_model, load_weights_into
from msd_tf.models import build_model
from msd_tf.training import AdversarialTrainer


class RunError(RuntimeError):
    """The output folder or a checkpoint cannot be used; the message says why."""


def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: the current (single-device) strategy; mirrored: all local GPUs (or the
    logical CPUs); multi_worker: MultiWorkerMirroredStrategy configured by TF_CONFIG."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_dir(strategy: tf.distribute.Strategy, output_dir: str) -> str:
    """Where this process writes: `output_dir` for the chief (and single-process runs);
    `output_dir/.worker_<id>` for other multi-worker tasks, which must still save their
    own checkpoints and model (saving is a collective operation) but not over the chief's.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return output_dir
    cluster = resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or (
        "chief" not in cluster and resolver.task_type == "worker" and resolver.task_id == 0)
    return output_dir if chief else os.path.join(output_dir, f".worker_{resolver.task_id}")


def _check_output_dir(config: TrainConfig) -> None:
    path = os.path.join(config.output_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        try:
            old = json.load(f)
        except json.JSONDecodeError as e:
            raise RunError(f"{path} is corrupt ({e}); remove the folder or pick another "
                           "--output_dir.") from e
    for k in ("output_dir", "epochs"):
        old.pop(k, None)
    new = config.experiment()
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
        raise RunError(f"--output_dir {config.output_dir} holds a different experiment "
                       f"({details}). Use a new --output_dir.")


def _git_commit() -> str:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - no git is fine
        return "unknown"


class _SaveEachEpoch(keras.callbacks.Callback):
    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable):
        super().__init__()
        self.manager, self.epoch = manager, epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


def _fit_multi_worker(trainer, strategy, ds, config, start, steps_per_epoch, manager, epoch):
    """Our own loop over `trainer.train_step` for MultiWorkerMirroredStrategy.

    Keras 3's `fit` fails under that strategy ("Attempt to convert a value (PerReplica
    ...)", keras-team/keras#20585); the train step itself is strategy-agnostic, so we
    run it with `strategy.run` and save a checkpoint per epoch as `fit` would.
    """
    iterator = iter(strategy.experimental_distribute_dataset(ds))

    @tf.function
    def step():
        logs = strategy.run(trainer.train_step, args=(next(iterator),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    history = {}
    for e in range(start, config.epochs):
        t0 = time.time()
        for _ in range(steps_per_epoch):
            logs = step()
        logs = {k: float(v) for k, v in logs.items()}
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        print(f"Epoch {e + 1}/{config.epochs} - {time.time() - t0:.0f}s - "
              + " - ".join(f"{k}: {v:.4f}" for k, v in sorted(logs.items())), flush=True)
        for m in trainer.metrics:
            m.reset_state()
        epoch.assign(e + 1)
        manager.save(checkpoint_number=e + 1)
    return history


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    lr = schedules.PiecewiseLinear(config.lr_epochs, config.lr_values, steps_per_epoch)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=config.momentum)
    return keras.optimizers.Adam(lr)


def train(config: TrainConfig, *, verbose="auto") -> dict:
    """Runs (or resumes) a training run; returns the summary also written to summary.json."""
    if config.deterministic:
        # Bit-exact reruns and resumption. Measured on the 2-core CPU: oneDNN kernels
        # (switched off by main.py before TF loads) and concurrent execution of
        # independent ops in the adversarial train step both changed weights by ~1e-3
        # between identical runs (the attacks' sign / top-k / argmax amplify float
        # reordering); op determinism plus one inter-op thread made 4 of 4 pairs equal.
        tf.config.experimental.enable_op_determinism()
        tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = make_strategy(config.strategy)
    config = dataclasses.replace(config, output_dir=worker_dir(strategy, config.output_dir))
    os.makedirs(config.output_dir, exist_ok=True)
    _check_output_dir(config)
    with open(os.path.join(config.output_dir, "config.json"), "w") as f:
        f.write(config.to_json())
    with open(os.path.join(config.output_dir, "flags.txt"), "w") as f:
        for k, v in json.loads(config.to_json()).items():
            if v is not None:
                v = ",".join(map(str, v)) if isinstance(v, list) else v
                f.write(f"--{k}={v}\n")
        f.write(f"# git commit: {_git_commit()}\n")

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = data.load_arrays(config.dataset, config.train_split, config.data_dir)
    x_eval, y_eval = data.load_arrays(config.dataset, config.eval_split, config.data_dir)
    steps_per_epoch = config.steps_per_epoch or len(x_train) // config.batch_size
    info = data.DATASETS[config.dataset]

    with strategy.scope():
        model = build_model(config.model, info["shape"], info["classes"])
        optimizer = _optimizer(config, steps_per_epoch)
        trainer = AdversarialTrainer(model, config.make_adversary(), seed=config.seed,
                                     weight_decay=config.weight_decay)
        trainer.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        jit_compile=config.jit_compile)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch,
                                     norm_error=trainer.norm_error)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(config.output_dir, "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        try:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001 - any failure means an unusable checkpoint
            raise RunError(f"Checkpoint {manager.latest_checkpoint} cannot be restored "
                           f"({type(e).__name__}: {str(e)[:200]}). Delete it to fall back "
                           "to the previous one, or use a new --output_dir.") from e
    elif config.init_from:
        try:
            load_weights_into(model, config.init_from)
        except ValueError as e:
            raise RunError(str(e)) from e
        print(f"Fine-tuning from {config.init_from}.")
    start = int(epoch.numpy())
    if start:
        print(f"Resuming {config.output_dir} from epoch {start} "
              f"(optimizer step {int(optimizer.iterations.numpy())}).")
    t0 = time.time()
    history = {}
    if start < config.epochs:
        ds = data.train_dataset(x_train, y_train, batch_size=config.batch_size,
                                seed=config.seed, start_step=int(optimizer.iterations.numpy()),
                                augment=config.augment)
        callbacks = [
            _SaveEachEpoch(manager, epoch),
            keras.callbacks.CSVLogger(os.path.join(config.output_dir, "history.csv"),
                                      append=True),
            keras.callbacks.TensorBoard(os.path.join(config.output_dir, "logs"),
                                        update_freq=50),
        ]
        if config.strategy == "multi_worker":
            history = _fit_multi_worker(trainer, strategy, ds, config, start, steps_per_epoch,
                                        manager, epoch)
        else:
            history = trainer.fit(ds, epochs=config.epochs, initial_epoch=start,
                                  steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                                  verbose=verbose).history
    export_dir = export_saved_model(model, os.path.join(config.output_dir, "saved_model"),
                                    metadata={"dataset": config.dataset,
                                              "model": config.model,
                                              "adversary": config.adversary})
    # Plain forward passes (Keras' evaluate() fails under MultiWorkerMirroredStrategy).
    correct = [tf.argmax(model(x_eval[i:i + config.batch_size], training=False), axis=1).numpy()
               == y_eval[i:i + config.batch_size] for i in range(0, len(x_eval), config.batch_size)]
    clean_acc = float(np.mean(np.concatenate(correct))) if correct else 0.0
    summary = {
        "config": json.loads(config.to_json()),
        "epochs_done": int(epoch.numpy()),
        "train_seconds_this_run": round(time.time() - t0, 1),
        "last_epoch_metrics": {k: float(v[-1]) for k, v in history.items()},
        "eval_split": config.eval_split,
        "eval_clean_acc": clean_acc,
        "saved_model": export_dir,
    }
    with open(os.path.join(config.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
