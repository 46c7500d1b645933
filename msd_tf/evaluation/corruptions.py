"""CIFAR-10-C accuracy per corruption and severity (Table 7; Hendrycks and Dietterich
2019, arXiv:1903.12261), from the data set as distributed (`npy_loader`: a folder of
`<corruption>.npy` and `labels.npy`) or through tensorflow-datasets' `cifar10_corrupted`."""

import json
import os

import numpy as np

from msd_tf.evaluation.checks import predict

# tensorflow-datasets' cifar10_corrupted configurations. The first 15 are the
# benchmark's standard set; the last 4 are its "extra" corruptions.
STANDARD = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
            "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
            "elastic", "pixelate", "jpeg_compression")
EXTRA = ("gaussian_blur", "saturate", "spatter", "speckle_noise")
SEVERITIES = (1, 2, 3, 4, 5)
# The distributed files stack the 5 severities, 10,000 test images each, severity 1 first.
PER_SEVERITY = 10_000


def load_corrupted(corruption: str, severity: int):
    """(x float32 in [0, 1], y int32) of one corruption and severity (10,000 images)."""
    import tensorflow_datasets as tfds

    from msd_tf.data import DataError

    try:
        ds = tfds.load(f"cifar10_corrupted/{corruption}_{severity}", split="test",
                       batch_size=-1, as_supervised=True)
    except Exception as e:  # noqa: BLE001 - network or missing data
        raise DataError(f"Could not load cifar10_corrupted/{corruption}_{severity} through "
                        f"tensorflow-datasets ({type(e).__name__}: {str(e)[:160]}). It needs "
                        "the network once (about 2.9 GB).") from e
    x, y = tfds.as_numpy(ds)
    return x.astype(np.float32) / 255.0, y.astype(np.int32)


def _folder_of(data_dir: str) -> str:
    """`data_dir` itself or its CIFAR-10-C/ subfolder: the one holding labels.npy."""
    for folder in (data_dir, os.path.join(data_dir, "CIFAR-10-C")):
        if os.path.exists(os.path.join(folder, "labels.npy")):
            return folder
    from msd_tf.data import DataError

    raise DataError(f"{data_dir} holds no CIFAR-10-C labels.npy (nor CIFAR-10-C/labels.npy); "
                    "point --data_dir at the extracted CIFAR-10-C.tar (Hendrycks and "
                    "Dietterich's <corruption>.npy and labels.npy) or leave it unset to load "
                    "through tensorflow-datasets.")


def _read_npy(path: str, shape: tuple) -> np.ndarray:
    from msd_tf.data import DataError

    if not os.path.exists(path):
        raise DataError(f"{path} is missing: CIFAR-10-C as distributed has one .npy per "
                        "corruption; use --corruptions=standard if only the standard 15 "
                        "are there.")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e}); download it again.") from e
    if array.shape[0] != shape[0] or array.shape[1:] != shape[1:]:
        raise DataError(f"{path} has shape {array.shape}, expected {shape} (5 severities of "
                        f"{PER_SEVERITY} images stacked); the file is truncated or not "
                        "CIFAR-10-C.")
    return array


def npy_loader(data_dir: str):
    """A loader `(corruption, severity) -> (x float32 in [0, 1], y int32)` over CIFAR-10-C
    as distributed: `<corruption>.npy` (50,000 x 32 x 32 x 3 uint8) and `labels.npy`
    (50,000), both the 5 severities stacked in order; files are memory-mapped."""
    folder = _folder_of(data_dir)
    n = PER_SEVERITY * len(SEVERITIES)
    labels = _read_npy(os.path.join(folder, "labels.npy"), (n,))

    def load(corruption: str, severity: int):
        images = _read_npy(os.path.join(folder, f"{corruption}.npy"), (n, 32, 32, 3))
        rows = slice((severity - 1) * PER_SEVERITY, severity * PER_SEVERITY)
        return (np.asarray(images[rows], np.float32) / 255.0,
                np.asarray(labels[rows], np.int32))

    return load


def corruption_accuracy(logits_fn, *, loader=load_corrupted, corruptions=STANDARD + EXTRA,
                        severities=SEVERITIES, num_examples: int | None = None) -> dict:
    """Accuracy per (corruption, severity), per corruption, and the means over the
    standard 15 and over all corruptions."""
    table = {}
    for c in corruptions:
        table[c] = {}
        for s in severities:
            x, y = loader(c, s)
            x, y = x[:num_examples], y[:num_examples]
            table[c][s] = float(np.mean(predict(logits_fn, x) == y))
    per_corruption = {c: float(np.mean(list(v.values()))) for c, v in table.items()}
    standard = [per_corruption[c] for c in corruptions if c in STANDARD]
    return {"by_severity": table, "per_corruption": per_corruption,
            "mean_standard": float(np.mean(standard)) if standard else None,
            "mean_all": float(np.mean(list(per_corruption.values())))}


def evaluate_corruptions(models, *, output_dir: str, paper: dict | None = None,
                         **kwargs) -> dict:
    """Runs `corruption_accuracy` for every `(name, logits_fn)` of `models`; writes
    corruptions.json and corruptions.md. `paper`: the paper's mean accuracy (%) by model
    name (Table 7), shown under the models whose name it has."""
    results = {}
    for name, logits_fn in models:
        results[name] = corruption_accuracy(logits_fn, **kwargs)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "corruptions.json"), "w") as f:
        json.dump(results, f, indent=2)
    models = list(results)
    lines = ["| corruption | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for c in next(iter(results.values()))["per_corruption"]:
        lines.append(f"| {c} | " + " | ".join(
            f"{100 * results[m]['per_corruption'][c]:.1f}" for m in models) + " |")
    for key, label in (("mean_standard", "mean (standard 15)"), ("mean_all", "mean (all)")):
        lines.append(f"| {label} | " + " | ".join(
            "-" if results[m][key] is None else f"{100 * results[m][key]:.1f}"
            for m in models) + " |")
    if paper:
        lines.append("| paper, Table 7 (mean) | " + " | ".join(
            f"{paper[m]:.1f}" if m in paper else "-" for m in models) + " |")
    with open(os.path.join(output_dir, "corruptions.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return results
