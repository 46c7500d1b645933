"""CIFAR-10-C accuracy per corruption and severity (Table 7; Hendrycks and Dietterich
2019, arXiv:1903.12261), through tensorflow-datasets' `cifar10_corrupted`."""

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


def evaluate_corruptions(models, *, output_dir: str, **kwargs) -> dict:
    """Runs `corruption_accuracy` for every `(name, logits_fn)` of `models`; writes
    corruptions.json and corruptions.md."""
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
    with open(os.path.join(output_dir, "corruptions.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return results
