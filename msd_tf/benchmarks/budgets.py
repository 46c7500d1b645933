"""Compute budgets, counted in example-passes of the model (forward + backward, times the
batch), the unit `summary.json`'s `compute` counts and that does not depend on the machine.

S: what the first CPU-scale recipes trained with (318 passes on each of 9,000 digits),
minutes per model. M: about 7% of the paper's MSD training (15 epochs x 60,000 digits x
~500 passes ~ 450 M), at most 90 minutes per model on 2 cores.
"""

import dataclasses

from msd_tf.config import TrainConfig

BUDGETS = {"S": 2_862_000, "M": 30_000_000}
# A recipe of a budget plans between these fractions of its share of it (E-AT's draw of
# norms and early-stopping attacks make the counted compute a little lower).
TOLERANCE = (0.93, 1.03)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A recipe's training compute when no attack stops early."""

    steps: int
    examples: int
    passes_per_example: float
    passes: float


# step_cost's results, keyed by everything it reads from a config (`_cost_key`).
_COSTS: dict[str, dict] = {}


def _cost_key(config: TrainConfig) -> str:
    """What one step's cost depends on: the data set's shapes and everything the adversary
    is built from (`TrainConfig.adversary_settings`; not epochs, rates, seeds or splits)."""
    return repr((config.dataset, sorted(config.adversary_settings().items())))


def step_cost(config: TrainConfig) -> dict:
    """Forward and backward example-passes per training example of one step of
    `config`'s adversary when no attack stops early: counted by the trainer's counter
    (`compute.Counter`) on one step of a linear model whose logit margin no perturbation
    in the box can flip (class 0 leads by 100, the weights are ~1e-3), so every attack
    runs all its iterations. E-AT: the mean of its norms' single-norm steps (each batch
    draws one). An upper bound of what training counts, the planning unit of
    every budget (`planned`); the run's own count is in its summary.json.

    Measured once per process for each adversary (`_cost_key`): a trace of one step
    takes seconds, and a table plans many recipes that share their adversaries.

    Returns:
      {"forward": float, "backward": float, "passes": forward + backward}.
    """
    key = _cost_key(config)
    if key not in _COSTS:
        _COSTS[key] = _measure_step(config)
    return dict(_COSTS[key])


def _measure_step(config: TrainConfig) -> dict:
    """`step_cost` without the memo."""
    import keras
    import numpy as np
    import tensorflow as tf

    from msd_tf import data
    from msd_tf.experiment import adversary_of
    from msd_tf.training import AdversarialTrainer

    if config.adversary == "eat":
        costs = [step_cost(dataclasses.replace(config, adversary=t.norm))
                 for t in config.threats]
        forward, backward = (float(np.mean([c[k] for c in costs]))
                             for k in ("forward", "backward"))
        return {"forward": forward, "backward": backward, "passes": forward + backward}
    info = data.DATASETS[config.dataset]
    classes, batch = info["classes"], 2
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(info["shape"]), keras.layers.Flatten(),
        keras.layers.Dense(classes, kernel_initializer=keras.initializers.RandomNormal(
            stddev=1e-3), bias_initializer=keras.initializers.Constant(
                [100.0] + [0.0] * (classes - 1)))])
    trainer = AdversarialTrainer(model, adversary_of(config), seed=0)
    # One step, run eagerly: tracing the train step took most of the ~2 s per adversary,
    # and the counts are the same (the closed-form tests, and every committed result's
    # recorded plan, agree with it).
    trainer.compile(optimizer=keras.optimizers.SGD(1e-9), run_eagerly=True,
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.full((batch, *info["shape"]), 0.5, np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(batch, np.int64))).batch(batch)
    history = trainer.fit(ds, epochs=1, shuffle=False, verbose=0).history
    forward, backward = (history[f"{k}_examples"][0] / batch for k in ("forward", "backward"))
    return {"forward": forward, "backward": backward, "passes": forward + backward}


def planned(config: TrainConfig, train_examples: int) -> Plan:
    """Steps x batch x the adversary's passes per example (`step_cost`)."""
    per_epoch = config.steps_per_epoch or train_examples // config.batch_size
    steps = config.epochs * per_epoch
    cost = step_cost(config)["passes"]
    return Plan(steps, steps * config.batch_size, cost, steps * config.batch_size * cost)


def check(passes: float, budget: float, share: float = 1.0) -> str | None:
    """None if a plan of `passes` spends its share of `budget` within TOLERANCE, else
    why not."""
    ratio = passes / (budget * share)
    low, high = TOLERANCE
    if low <= ratio <= high:
        return None
    return (f"plans {passes / 1e6:.2f} M example-passes, {ratio:.2f} x its share "
            f"({share:g}) of the budget {budget / 1e6:.2f} M; set --epochs (or "
            f"--steps_per_epoch) so it lies in {low}-{high} x")


def fit(config: TrainConfig, passes: float, train_examples: int) -> list[str]:
    """The `--epochs` and `--lr_epochs` flags that make `config` spend `passes` (its
    epochs rounded, its learning-rate knots scaled with them): a variant with another
    step cost (attack iterations, adversary) trains at the same compute."""
    plan = planned(dataclasses.replace(config, epochs=1), train_examples)
    epochs = max(1, round(passes / plan.passes))
    if epochs == config.epochs:
        return []
    scale = epochs / config.epochs
    knots = ",".join(f"{round(k * scale, 3):g}" for k in config.lr_epochs)
    return [f"--epochs={epochs}", f"--lr_epochs={knots}"]
