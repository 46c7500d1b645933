"""Training adversaries: clean batch in, adversarial batch out (PAPER_NOTES section 4).

One class per adversary, one module per family, chosen by name through `ADVERSARIES`
(`make_adversary`):

  none        standard training                                        single.py
  linf l2 l1  single-norm PGD (P_inf, P_2, P_1)                        single.py
  msd         multi steepest descent over the union                    msd.py
  max         worst case over the three PGD attacks                    single.py
  avg         the three PGD results together (a 3x batch)              single.py
  eat         E-AT: one norm per batch, drawn in proportion to each    eat.py
              norm's running adversarial error (Croce and Hein, ICML 2022,
              arXiv:2105.12508)
  ramp        RAMP: APGD in a source and a target norm, train on the   ramp.py
              worse of the two plus lambda * KL(p(x_q) || p(x_r)) on the
              examples x_q leaves correct (Jiang and Singh, NeurIPS 2024)

The single-norm attacks of linf/l2/l1, max, avg and eat are PGD, or with
`train_attack="apgd"` APGD as a training attack (`base.train_attack_delta`: E-AT's and
RAMP's `apgd_train`, the highest-loss point of a run from delta = 0); RAMP always uses
APGD.

Adversaries are Keras layers, so that an adversary with state (E-AT's running error)
owns it as a weight that the trainer tracks and the run's checkpoint saves. Their
methods are graph-level: the Keras `train_step` calls them.

Adding an adversary: in a new module, subclass `base.Adversary` (override `perturb`;
`after_update` if it learns from the training step; `loss_term` and `term_name` if it
adds a term to the loss; declare its own constructor options in `options`, one
`base.Option` each: the training flag that sets it is defined from it, and its value
reaches the constructor through `TrainConfig.adversary_options`), then add one entry to
`ADVERSARIES` here.
"""

from typing import Sequence

from msd_tf.adversaries.base import (
    TRAIN_ATTACKS,
    Adversary,
    AdversaryOutput,
    Option,
    TrainingStep,
    train_attack_delta,
)
from msd_tf.adversaries.eat import EAT, eat_choice
from msd_tf.adversaries.msd import MSD
from msd_tf.adversaries.ramp import RAMP, kl_on_correct
from msd_tf.adversaries.single import Avg, Max, SingleNorm, Standard
from msd_tf.threats import ThreatModel

__all__ = ["ADVERSARIES", "EAT", "MSD", "RAMP", "TRAIN_ATTACKS", "Adversary",
           "AdversaryOutput", "Avg", "Max", "Option", "SingleNorm", "Standard", "TrainingStep",
           "eat_choice", "kl_on_correct", "make_adversary", "train_attack_delta"]

ADVERSARIES = {
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
