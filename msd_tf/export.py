"""SavedModel export: one `serve` endpoint, float32 images in [0, 1] -> logits."""

import json
import os

import keras
import tensorflow as tf


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


def load_logits_fn(path: str):
    """Loads an exported SavedModel; returns `(logits_fn, metadata)`.

    Raises:
      ValueError: `path` is not a SavedModel with a `serve` endpoint.
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path} is not a SavedModel folder (no saved_model.pb).")
    loaded = tf.saved_model.load(path)
    if not hasattr(loaded, "serve"):
        raise ValueError(f"SavedModel {path} has no `serve` endpoint.")
    meta = {}
    meta_path = os.path.join(path, "msd_tf.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    serve = loaded.serve

    def logits_fn(x):
        return serve(tf.cast(x, tf.float32))

    logits_fn.saved_model = loaded  # keep the trackable alive
    return logits_fn, meta


def load_weights_into(model: keras.Model, path: str) -> None:
    """Copies weights into `model` from a SavedModel (matched by weight path and shape)
    or from a training-run folder (its latest checkpoint), for fine-tuning.

    Raises:
      ValueError: `path` is neither, or a weight is missing or has another shape.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        loaded = tf.saved_model.load(path)
        by_name = {v.name.rsplit(":", 1)[0]: v for v in loaded.variables}
        for w in model.weights:
            src = by_name.get(w.path)
            if src is None or tuple(src.shape) != tuple(w.shape):
                got = None if src is None else tuple(src.shape)
                raise ValueError(f"--init_from {path}: weight {w.path} {tuple(w.shape)} "
                                 f"not found or of another shape ({got}).")
            w.assign(src)
        return
    latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
    if latest is None:
        raise ValueError(f"--init_from {path}: neither a SavedModel (saved_model.pb) nor a "
                         "training run with checkpoints.")
    try:
        tf.train.Checkpoint(model=model).restore(latest).expect_partial() \
            .assert_existing_objects_matched()
    except AssertionError as e:
        raise ValueError(f"--init_from {path}: its checkpoint does not fit this model "
                         f"({str(e)[:200]}).") from e
