"""SavedModel export, and the one loader of models: a SavedModel or a training-run folder.

Export: one `serve` endpoint, float32 images in [0, 1] -> logits, `msd_tf.json` beside it.
Loading runs the SavedModel's graph: a SavedModel is a program, load only trusted ones.
"""

import dataclasses
import functools
import json
import os
from typing import Callable

import keras
import tensorflow as tf

from msd_tf import fingerprints


def export_saved_model(model: keras.Model, path: str, *, metadata: dict | None = None) -> str:
    """Writes `model` as a SavedModel with a `serve` endpoint and `msd_tf.json` beside it.

    The endpoint takes `[None, H, W, C]` float32 images in [0, 1] and returns logits;
    the model's own preprocessing (e.g. CIFAR normalization) is inside the graph.

    Returns:
      `path`.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name="images")
    archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
    archive.write_out(path, verbose=False)
    meta = {"input_shape": list(model.input_shape[1:]),
            "num_classes": int(model.output_shape[-1]), **(metadata or {})}
    with open(os.path.join(path, "msd_tf.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    return path


def model_name(path: str) -> str:
    """A short name for a model folder: `runs/mnist/msd/saved_model` -> "msd"."""
    path = os.path.normpath(path)
    name = os.path.basename(path)
    if name in ("saved_model", ""):
        name = os.path.basename(os.path.dirname(path))
    return name or "model"


class ModelLoadError(ValueError):
    """A model folder cannot be used; the message names it and says what to do."""


@dataclasses.dataclass
class LoadedModel:
    """A model ready for attacks, and what identifies it.

    Attributes:
      logits_fn: float32 images in [0, 1], batch first -> logits.
      metadata: `msd_tf.json` of a SavedModel, or dataset / model of a run folder.
      fingerprint: SHA-256 of the content that defines the model (a SavedModel's graph
        and variables, or a run's model settings and restored checkpoint files).
      source: what was loaded ("SavedModel" or the checkpoint prefix).
      variables: the model's variables (for inspection, e.g. first-layer filters).
      weights_fingerprint: SHA-256 of the variables' values alone (`fingerprints.of_weights`):
        the same for a SavedModel and the run folder it was exported from; the
        evaluation's attack seeds derive from it (`fingerprint` when there are no
        variables to read).
    """

    path: str
    logits_fn: Callable
    metadata: dict
    fingerprint: str
    source: str
    variables: tuple = ()

    @functools.cached_property
    def weights_fingerprint(self) -> str:
        if not self.variables:  # nothing to read the weights from: the files decide
            return self.fingerprint
        return fingerprints.of_weights([v.numpy() for v in self.variables])


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"


def load_logits_fn(path: str):
    """Loads an exported SavedModel; returns `(logits_fn, metadata)`.

    Raises:
      ModelLoadError: `path` is not a loadable SavedModel with a `serve` endpoint.
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModelLoadError(f"{path} is not a SavedModel folder (no saved_model.pb).")
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:  # noqa: BLE001 - truncated or corrupt files, wrong format
        raise ModelLoadError(f"{path}: the SavedModel cannot be loaded ({_short(e)}); it is "
                             "truncated or corrupt: export it again.") from e
    if not hasattr(loaded, "serve"):
        raise ModelLoadError(f"SavedModel {path} has no `serve` endpoint; export it with "
                             "msd_tf.export.export_saved_model.")
    meta = {}
    meta_path = os.path.join(path, "msd_tf.json")
    if os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{meta_path} is corrupt ({e}); export the model again.") from e
    serve = loaded.serve

    def logits_fn(x):
        return serve(tf.cast(x, tf.float32))

    logits_fn.saved_model = loaded  # keep the trackable alive
    return logits_fn, meta


def _read_run_config(path: str) -> dict:
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path) as f:
            cfg = json.load(f)
        cfg["dataset"], cfg["model"]  # noqa: B018 - both must be present
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{config_path} is missing or corrupt ({_short(e)}); a training "
                             "run folder needs the config.json its run wrote.") from e
    return cfg


def load_model(path: str) -> LoadedModel:
    """Loads a SavedModel folder, or a training-run folder (its newest checkpoint that
    restores), for evaluation. A SavedModel is a program: load only trusted ones.

    Raises:
      ModelLoadError: neither, or unreadable (the message says what to do).
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        fingerprint = fingerprints.of_saved_model(path)
        logits_fn, meta = load_logits_fn(path)
        return LoadedModel(path, logits_fn, meta, fingerprint, "SavedModel",
                           tuple(logits_fn.saved_model.variables))
    if os.path.isfile(os.path.join(path, "config.json")):
        from msd_tf import checkpoints, data
        from msd_tf.models import build_model

        cfg = _read_run_config(path)
        info = data.DATASETS.get(cfg["dataset"])
        if info is None:
            raise ModelLoadError(f"{path}: config.json names an unknown dataset "
                                 f"{cfg['dataset']!r}.")
        model = build_model(cfg["model"], info["shape"], info["classes"])
        folder = os.path.join(path, "checkpoints")
        try:
            found = checkpoints.restore_newest(tf.train.Checkpoint(model=model), folder,
                                               partial=True, move_failed=False)
        except checkpoints.RestoreError as e:
            raise ModelLoadError(f"{path}: {e}") from e
        if found is None:
            raise ModelLoadError(f"{path}: a training run without checkpoints; train it "
                                 "first (python -m msd_tf.main ...).")
        meta = {"dataset": cfg["dataset"], "model": cfg["model"],
                "num_classes": info["classes"], "input_shape": list(info["shape"]),
                "adversary": cfg.get("adversary"), "train_split": cfg.get("train_split")}
        if cfg.get("train_split") and cfg.get("eval_split"):
            from msd_tf import protocol

            meta["protocol"] = protocol.name_of(cfg["train_split"], cfg["eval_split"])
        fingerprint = fingerprints.of_json({"dataset": cfg["dataset"], "model": cfg["model"],
                                            "checkpoint": fingerprints.of_checkpoint(found[1])})
        return LoadedModel(path, lambda x: model(x, training=False), meta, fingerprint,
                           found[1], tuple(model.weights))
    raise ModelLoadError(f"{path} is neither a SavedModel folder (saved_model.pb) nor a "
                         "training run folder (config.json + checkpoints/).")


def load_weights_into(model: keras.Model, path: str) -> None:
    """Copies weights into `model` from a SavedModel (matched by weight path and shape)
    or from a training-run folder (its newest checkpoint that restores), for fine-tuning.

    Raises:
      ValueError: `path` is neither, or a weight is missing or has another shape.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        try:
            loaded = tf.saved_model.load(path)
        except Exception as e:  # noqa: BLE001 - truncated or corrupt files
            raise ModelLoadError(f"--init_from {path}: the SavedModel cannot be loaded "
                                 f"({_short(e)}).") from e
        by_name = {v.name.rsplit(":", 1)[0]: v for v in loaded.variables}
        for w in model.weights:
            src = by_name.get(w.path)
            if src is None or tuple(src.shape) != tuple(w.shape):
                got = None if src is None else tuple(src.shape)
                raise ValueError(f"--init_from {path}: weight {w.path} {tuple(w.shape)} "
                                 f"not found or of another shape ({got}).")
            w.assign(src)
        return
    from msd_tf import checkpoints

    try:
        found = checkpoints.restore_newest(tf.train.Checkpoint(model=model),
                                           os.path.join(path, "checkpoints"), partial=True,
                                           move_failed=False)
    except checkpoints.RestoreError as e:
        raise ValueError(f"--init_from {path}: its checkpoints do not fit this model ({e}).") \
            from e
    if found is None:
        raise ValueError(f"--init_from {path}: neither a SavedModel (saved_model.pb) nor a "
                         "training run with checkpoints.")
