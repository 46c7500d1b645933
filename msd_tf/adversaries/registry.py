"""The adversaries by name (`ADVERSARIES`, `make_adversary`): imports TensorFlow. The
names and options alone are in `catalog`, which does not. The package's names (its
`__all__`) are loaded from here on first use."""

from typing import Sequence

from msd_tf.adversaries import catalog
from msd_tf.adversaries.base import (
    TRAIN_ATTACKS,
    Adversary,
    AdversaryOutput,
    TrainingStep,
    train_attack_delta,
)
from msd_tf.adversaries.eat import EAT, eat_choice
from msd_tf.adversaries.msd import MSD
from msd_tf.adversaries.ramp import RAMP, kl_on_correct
from msd_tf.adversaries.single import Avg, Max, SingleNorm, Standard
from msd_tf.threats import ThreatModel

__all__ = ["ADVERSARIES", "EAT", "MSD", "RAMP", "TRAIN_ATTACKS", "Adversary",
           "AdversaryOutput", "Avg", "Max", "SingleNorm", "Standard", "TrainingStep",
           "eat_choice", "kl_on_correct", "make_adversary", "train_attack_delta"]

ADVERSARIES = {  # in the order of catalog.NAMES (checked below)
    "none": Standard,
    "linf": lambda threats, **kw: SingleNorm("linf", threats, **kw),
    "l2": lambda threats, **kw: SingleNorm("l2", threats, **kw),
    "l1": lambda threats, **kw: SingleNorm("l1", threats, **kw),
    "msd": MSD,
    "max": Max,
    "avg": Avg,
    "eat": EAT,
    "ramp": RAMP,
}
if tuple(ADVERSARIES) != catalog.NAMES:
    raise ImportError(f"adversaries: the registry {tuple(ADVERSARIES)} and catalog.NAMES "
                      f"{catalog.NAMES} must list the same names in the same order.")


def make_adversary(name: str, threats: Sequence[ThreatModel] = (), *,
                   msd_steps: int | None = None, training: bool = False,
                   train_attack: str = "pgd", **options) -> Adversary:
    """The adversary registered as `name`; `options` are its own (`Class.options`, e.g.
    RAMP's `lam` and `pair`).

    Args:
      msd_steps: MSD's iterations (its option; None: the largest `steps` of `threats`).
        Passed only to adversaries that declare it (MSD); the others ignore it, so one
        call can make any adversary of a run's settings.
      training, train_attack: as for `Adversary`.

    Raises:
      ValueError: unknown `name` (the message lists the known ones), options it does
        not take, or threats that do not fit it.

    Example:
      >>> make_adversary("msd", threats.MSD_TRAIN["mnist"][0], msd_steps=100)
    """
    if name not in ADVERSARIES:
        raise ValueError(f"Unknown adversary {name!r}; known: {list(ADVERSARIES)}.")
    factory = ADVERSARIES[name]
    takes = {o.name for o in getattr(factory, "options", ())}
    unknown = sorted(set(options) - takes)
    if unknown:
        raise ValueError(f"Adversary {name!r} takes no option(s) {unknown}"
                         f"{'; its options: ' + str(sorted(takes)) if takes else ''}.")
    if getattr(factory, "takes_msd_steps", False):
        options["msd_steps"] = msd_steps
    return factory(tuple(threats), training=training, train_attack=train_attack,
                   name=f"adversary_{name}", **options)
