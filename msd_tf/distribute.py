"""Distribution strategies by name, and where each process of a multi-worker run writes.

Importing this module does not import TensorFlow (the training flags list `STRATEGIES`);
making a strategy does.
"""

import os


def _default():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def _mirrored():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def _multi_worker():
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


# default: the current (single-device) strategy; mirrored: all local GPUs (or the
# logical CPUs); multi_worker: MultiWorkerMirroredStrategy configured by TF_CONFIG.
STRATEGIES = {"default": _default, "mirrored": _mirrored, "multi_worker": _multi_worker}


def make_strategy(name: str):
    """The strategy (a `tf.distribute.Strategy`) registered as `name`; a ValueError
    lists the known names."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; known: {sorted(STRATEGIES)}.")
    return STRATEGIES[name]()


def worker_dir(strategy, output_dir: str) -> str:
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
