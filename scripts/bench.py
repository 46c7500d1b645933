"""Speed benchmark: prints measured figures (no pass/fail).

Figures, all for the MNIST CNN at batch 100 in graph mode on this machine:
  - one plain training step (forward, backward, Adam update);
  - one MSD iteration (one input gradient + one 3x-batch forward + three projections);
  - project_l1 and project_l1_box on [100, 784] and [100, 3072] against a plain tf.sort
    of the same batch.

With --adversaries: the training-step time of every adversary side by side (standard,
linf, l2, l1, msd, max, avg, eat) for the MNIST CNN and the CIFAR-10 PreAct ResNet-18,
with a stated number of attack iterations per norm (--attack_steps).

Usage: python -m scripts.bench [--repeats 20] [--jit]
       python -m scripts.bench --adversaries [--attack_steps 10]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import msd_tf  # noqa: E402,F401  (before TensorFlow: oneDNN on by default, see msd_tf.machine)

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from msd_tf import machine, projections, threats  # noqa: E402
from msd_tf.attacks import msd_delta  # noqa: E402
from msd_tf.attacks.losses import cross_entropy  # noqa: E402
from msd_tf.models import mnist_cnn  # noqa: E402
from msd_tf.seeding import as_seed  # noqa: E402


def median_time(fn, repeats: int) -> float:
    """Median wall time of `fn()` in seconds, after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_adversaries(args):
    from msd_tf.adversaries import ADVERSARIES, make_adversary
    from msd_tf.models import preact_resnet18
    from msd_tf.training import AdversarialTrainer

    rng = np.random.default_rng(0)
    k = args.attack_steps
    setups = [("MNIST CNN", mnist_cnn, (28, 28, 1), 100, "mnist"),
              ("CIFAR-10 PreAct ResNet-18", preact_resnet18, (32, 32, 3), args.cifar_batch,
               "cifar10")]
    print(f"machine: {machine.describe()}; "
          f"{k} attack iterations per norm (MSD: {k} iterations); median of "
          f"{args.adv_repeats} steps after 2 warm-up steps")
    print("| model (batch) | " + " | ".join(ADVERSARIES) + " |")
    print("|---|" + "---|" * len(ADVERSARIES))
    for title, build, shape, batch, dataset in setups:
        x = tf.constant(rng.uniform(size=(batch, *shape)).astype(np.float32))
        y = tf.constant(rng.integers(0, 10, batch).astype(np.int32))
        cells = []
        for name in ADVERSARIES:
            keras.utils.set_random_seed(0)
            trainer = AdversarialTrainer(build(), make_adversary(
                name, threats.paper_training(dataset, name, steps=k), msd_steps=k))
            trainer.compile(optimizer=keras.optimizers.SGD(0.01),
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            trainer.optimizer.build(trainer.model.trainable_variables)
            step = tf.function(trainer.train_step)
            t = median_time(lambda s=step, d=(x, y): s(d)["adv_loss"].numpy(), args.adv_repeats)
            cells.append(f"{t * 1e3:.0f} ms")
        print(f"| {title} ({batch}) | " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--jit", action="store_true", help="compile with XLA")
    parser.add_argument("--adversaries", action="store_true",
                        help="time one training step of every adversary")
    parser.add_argument("--attack_steps", type=int, default=10)
    parser.add_argument("--adv_repeats", type=int, default=3)
    parser.add_argument("--cifar_batch", type=int, default=32)
    args = parser.parse_args()
    if args.adversaries:
        return bench_adversaries(args)
    rng = np.random.default_rng(0)
    b = args.batch
    x = tf.constant(rng.uniform(size=(b, 28, 28, 1)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, b).astype(np.int32))
    keras.utils.set_random_seed(0)
    model = mnist_cnn()
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=args.jit)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(cross_entropy(model(x, training=True), y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    ths, _ = threats.MSD_TRAIN["mnist"]
    seed = as_seed(0)

    msd_steps = 20
    msd_run = tf.function(
        lambda x, y: msd_delta(model, x, y, ths, seed, steps=msd_steps).delta,
        jit_compile=args.jit)
    # The machine is shared and noisy: alternate the two measurements over several
    # rounds and report medians. An MSD iteration is timed as a 20-iteration attack
    # divided by 20 (this includes the attack's fixed set-up, so it is an upper bound).
    train_times, msd_times, ratios = [], [], []
    for _ in range(args.rounds):
        t_train = median_time(lambda: train_step(x, y).numpy(), args.repeats)
        t_msd = median_time(lambda: msd_run(x, y).numpy(), 3) / msd_steps
        train_times.append(t_train)
        msd_times.append(t_msd)
        ratios.append(t_msd / t_train)
    t_train, t_msd = statistics.median(train_times), statistics.median(msd_times)

    print(f"machine: {machine.describe()}; jit={args.jit}")
    print(f"train step (batch {b}):             {t_train * 1e3:8.2f} ms")
    print(f"MSD iteration (batch {b}):          {t_msd * 1e3:8.2f} ms   "
          f"ratio to train step {statistics.median(ratios):.2f}x (median of {args.rounds} "
          f"rounds, range {min(ratios):.2f}-{max(ratios):.2f}; target <= 1.8x)")
    for n in (784, 3072):
        v = tf.constant(rng.normal(size=(100, n)).astype(np.float32))
        proj = tf.function(lambda v: projections.project_l1(v, 10.0), jit_compile=args.jit)
        srt = tf.function(lambda v: tf.sort(tf.abs(v), axis=1, direction="DESCENDING"),
                          jit_compile=args.jit)
        t_p = median_time(lambda v=v, f=proj: f(v).numpy(), args.repeats * 5)
        t_s = median_time(lambda v=v, f=srt: f(v).numpy(), args.repeats * 5)
        x = tf.constant(rng.uniform(size=(100, n)).astype(np.float32))
        box = tf.function(lambda v, x=x: projections.project_l1_box(x, v, 10.0),
                          jit_compile=args.jit)
        t_b = median_time(lambda v=v, f=box: f(v).numpy(), args.repeats * 5)
        print(f"project_l1 [100, {n}]:            {t_p * 1e3:8.3f} ms   "
              f"sort {t_s * 1e3:.3f} ms, ratio {t_p / t_s:.2f}x (target: below 1x)")
        print(f"project_l1_box [100, {n}]:        {t_b * 1e3:8.3f} ms   "
              f"ratio to the sort {t_b / t_s:.2f}x")


if __name__ == "__main__":
    main()
