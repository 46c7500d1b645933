"""The device check (run by scripts/device_check.sh): GPU-relevant checks, then timings.

Checks: op determinism (two identical MSD training steps give bit-identical weights;
a missing deterministic kernel stops the check with one line naming the op and the
--nodeterministic escape), one MirroredStrategy step over every device, and a mixed
precision (bfloat16) step against float32. Timings (median of measured steps after
warm-up): the MSD training step at the paper's settings (MNIST CNN: batch 100, 100
MSD iterations; CIFAR-10 PreAct ResNet-18: batch 128, 50 iterations) in float32 and
mixed_bfloat16, without and with XLA, converted to seconds per epoch (600 and 391
steps), the plain training step beside each (the MSD step / plain step ratio), peak
device memory, and the MNIST step fed by the real tf.data pipeline against a constant
batch. Writes results.json and results.md to --out; a time budget skips what would
not fit (and says so), after the first timing.

Usage: python -m scripts.device_check --out=DIR [--device=gpu|cpu] [--budget_s=420]
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import msd_tf  # noqa: E402,F401  (before TensorFlow: oneDNN on by default, see msd_tf.machine)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from msd_tf import cli, data, machine, threats  # noqa: E402
from msd_tf.adversaries import make_adversary  # noqa: E402
from msd_tf.models import mnist_cnn, preact_resnet18  # noqa: E402
from msd_tf.training import AdversarialTrainer  # noqa: E402
from scripts.bench import median_time  # noqa: E402  (the same median timing)

# (title, model, input shape, batch, dataset of MSD_TRAIN, steps per epoch) at the paper's
# settings; the CPU mode shrinks batch and iterations (see SHRINK) to check the code path.
SETUPS = {
    "mnist": ("MNIST CNN", mnist_cnn, (28, 28, 1), 100, "mnist", 600),
    "cifar10": ("CIFAR-10 PreAct ResNet-18", preact_resnet18, (32, 32, 3), 128, "cifar10", 391),
}
SHRINK = {"batch": 8, "iterations": 2}


class Budget:
    def __init__(self, seconds: float):
        self.end = time.time() + seconds

    def left(self) -> float:
        return self.end - time.time()


def _trainer(setup, adversary: str, iterations: int, precision: str, jit: bool, strategy=None):
    title, build, shape, batch, dataset, _ = setup
    keras.mixed_precision.set_global_policy(precision)
    union = threats.paper_training(dataset, adversary, steps=iterations)  # its flagfile's
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(0)
        trainer = AdversarialTrainer(build(shape, 10), make_adversary(adversary, union,
                                                                      msd_steps=iterations))
        trainer.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        jit_compile=jit)
        trainer.optimizer.build(trainer.model.trainable_variables)
    keras.mixed_precision.set_global_policy("float32")
    return trainer


def _batch(shape, batch, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.uniform(size=(batch, *shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, batch).astype(np.int32))
    return x, y


def _step_fn(trainer):
    return tf.function(trainer.train_step, jit_compile=trainer.jit_compile)


def _weights(trainer):
    return [w.numpy() for w in trainer.model.weights]


def check_determinism(setup, iterations):
    """Two fresh trainers, two MSD steps each: bit-identical weights."""
    title, _, shape, batch, _, _ = setup
    x, y = _batch(shape, batch)
    runs = []
    for _ in range(2):
        trainer = _trainer(setup, "msd", iterations, "float32", False)
        step = _step_fn(trainer)
        for _ in range(2):
            step((x, y))
        runs.append(_weights(trainer))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(*runs))
    return {"check": f"determinism ({title}, 2 MSD steps twice)", "max_weight_diff": diff,
            "ok": diff == 0.0}


def check_mirrored(setup, iterations):
    devices = [d.name for d in (tf.config.list_logical_devices("GPU")
                                or tf.config.list_logical_devices("CPU"))]
    strategy = tf.distribute.MirroredStrategy(devices)
    title, _, shape, batch, _, _ = setup
    batch = max(batch // len(devices), 1) * len(devices)
    trainer = _trainer(setup, "msd", iterations, "float32", False, strategy)
    x, y = _batch(shape, batch)
    before = _weights(trainer)
    trainer.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch), epochs=1, verbose=0)
    moved = max(float(np.abs(a - b).max()) for a, b in zip(before, _weights(trainer)))
    return {"check": f"MirroredStrategy step over {len(devices)} device(s) ({title})",
            "replicas": strategy.num_replicas_in_sync, "ok": moved > 0}


def check_mixed_precision(setup, iterations):
    """One MSD step in float32 and in mixed_bfloat16 from the same weights: the update
    points the same way (cosine >= 0.94, the bound tests/test_precision.py states) and
    the adversarial loss agrees to 0.1%."""
    title, _, shape, batch, _, _ = setup
    x, y = _batch(shape, batch)
    out = {}
    for precision in ("float32", "mixed_bfloat16"):
        trainer = _trainer(setup, "msd", iterations, precision, False)
        before = _weights(trainer)
        logs = _step_fn(trainer)((x, y))
        update = np.concatenate([(a - b).ravel() for a, b in zip(_weights(trainer), before)])
        out[precision] = (float(logs["adv_loss"]), update, before)
    (loss, u, w), (loss16, u16, w16) = out["float32"], out["mixed_bfloat16"]
    same_start = all(np.array_equal(a, b) for a, b in zip(w, w16))
    cosine = float(u @ u16 / (np.linalg.norm(u) * np.linalg.norm(u16) + 1e-30))
    return {"check": f"mixed_bfloat16 vs float32 step ({title})", "adv_loss_float32": loss,
            "adv_loss_bfloat16": loss16, "update_cosine": cosine,
            "ok": same_start and cosine >= 0.94 and abs(loss16 - loss) <= 1e-3 * abs(loss)}


def _peak_memory():
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**30


def time_setup(name, setup, iterations, repeats, budget, rows, notes):
    title, _, shape, batch, _, per_epoch = setup
    x, y = _batch(shape, batch)
    for precision in ("float32", "mixed_bfloat16"):
        for jit in (False, True):
            label = f"{title}, {precision}, {'XLA' if jit else 'graph'}"
            if rows and budget.left() < 30:  # the first timing runs whatever the budget
                notes.append(f"skipped for time: {label}")
                continue
            gpus = tf.config.list_logical_devices("GPU")
            if gpus:
                tf.config.experimental.reset_memory_stats(gpus[0].name)
            times = {}
            for adversary in ("none", "msd"):
                step = _step_fn(_trainer(setup, adversary, iterations, precision, jit))
                times[adversary] = median_time(lambda s=step: s((x, y))["loss"].numpy(),
                                                repeats)
            rows.append({"setup": name, "label": label, "batch": batch,
                         "msd_iterations": iterations,
                         "plain_step_ms": round(1e3 * times["none"], 2),
                         "msd_step_ms": round(1e3 * times["msd"], 2),
                         "msd_epoch_s": round(times["msd"] * per_epoch, 1),
                         "msd_iteration_over_plain_step": round(
                             (times["msd"] - times["none"]) / iterations / times["none"], 2),
                         "peak_memory_gib": _peak_memory()})
            print(json.dumps(rows[-1]), flush=True)


def time_pipeline(setup, iterations, repeats):
    """The MNIST MSD step fed by the real tf.data pipeline vs one constant batch."""
    title, _, shape, batch, _, _ = setup
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(20 * batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, len(x)).astype(np.int32)
    trainer = _trainer(setup, "msd", iterations, "float32", False)
    step = _step_fn(trainer)
    it = iter(data.train_dataset(x, y, batch_size=batch, seed=0))
    fed = median_time(lambda: step(next(it))["loss"].numpy(), repeats)
    const = (tf.constant(x[:batch]), tf.constant(y[:batch]))
    fixed = median_time(lambda: step(const)["loss"].numpy(), repeats)
    return {"setup": title, "tf_data_step_ms": round(1e3 * fed, 2),
            "constant_batch_step_ms": round(1e3 * fixed, 2),
            "ratio": round(fed / fixed, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--budget_s", type=float, default=420.0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    budget = Budget(args.budget_s)
    gpus = tf.config.list_physical_devices("GPU")
    if args.device == "gpu" and not gpus:
        sys.exit("error: no GPU visible to TensorFlow (tf.config.list_physical_devices('GPU') "
                 "is empty); install requirements-gpu.txt, or run with --device=cpu.")
    setups = dict(SETUPS)
    repeats = 5
    if args.device == "cpu":  # the code path, at toy sizes
        setups = {k: (t, b, s, SHRINK["batch"], d, p) for k, (t, b, s, _, d, p) in SETUPS.items()}
        repeats = 2
    iterations = {"mnist": 100, "cifar10": 50} if args.device == "gpu" else \
        {k: SHRINK["iterations"] for k in SETUPS}

    tf.config.experimental.enable_op_determinism()
    checks, rows, notes = [], [], []
    try:
        checks.append(check_determinism(setups["mnist"], iterations["mnist"]))
    except tf.errors.UnimplementedError as e:  # a GPU kernel without a deterministic version
        sys.exit(f"error: {cli.nondeterministic_op(e) or e}")
    checks.append(check_mirrored(setups["mnist"], iterations["mnist"]))
    checks.append(check_mixed_precision(setups["mnist"], iterations["mnist"]))
    for c in checks:
        print(json.dumps(c), flush=True)
    pipeline = time_pipeline(setups["mnist"], iterations["mnist"], repeats)
    print(json.dumps(pipeline), flush=True)
    for name, setup in setups.items():
        time_setup(name, setup, iterations[name], repeats, budget, rows, notes)

    device = (tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
              if gpus else f"CPU ({platform.machine()}, {os.cpu_count()} cores)")
    result = {"device": device, "mode": args.device, "tensorflow": tf.__version__,
              "keras": keras.__version__, "python": platform.python_version(),
              "machine": machine.facts(),
              "checks": checks, "pipeline": pipeline, "timings": rows, "notes": notes}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"# Device check: {device} ({args.device} mode)", "",
             f"TensorFlow {tf.__version__}, Keras {keras.__version__}.", "", "## Checks", ""]
    lines += [f"- {'ok' if c['ok'] else 'FAILED'}: {c['check']}" for c in checks]
    lines += ["", "## MSD training step", "",
              "| setup | batch | MSD iterations | plain step (ms) | MSD step (ms) | MSD epoch (s) "
              "| MSD iteration / plain step | peak memory (GiB) |", "|---" * 8 + "|"]
    for r in rows:
        mem = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        lines.append(f"| {r['label']} | {r['batch']} | {r['msd_iterations']} | "
                     f"{r['plain_step_ms']} | {r['msd_step_ms']} | {r['msd_epoch_s']} | "
                     f"{r['msd_iteration_over_plain_step']} | {mem} |")
    lines += ["", f"Input pipeline ({pipeline['setup']}): tf.data step "
              f"{pipeline['tf_data_step_ms']} ms vs constant batch "
              f"{pipeline['constant_batch_step_ms']} ms "
              f"(ratio {pipeline['ratio']}).", *[f"- {n}" for n in notes]]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not all(c["ok"] for c in checks):
        sys.exit("error: a device check failed: " + ", ".join(c["check"] for c in checks
                                                               if not c["ok"]))


if __name__ == "__main__":
    main()
