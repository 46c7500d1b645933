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
