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
`catalog.Option` each, in `catalog.OPTIONS`: the training flag that sets it is defined
from it, and its value reaches the constructor through `TrainConfig.adversary_options`),
then add its name to `catalog.NAMES` and one entry to `registry.ADVERSARIES`.

Importing this package does not import TensorFlow: the flags read `catalog` alone, and
every other name here is loaded on first use.
"""

from msd_tf.adversaries import catalog
from msd_tf.adversaries.catalog import Option

# Loaded from `registry` (which imports TensorFlow) on first access.
_FROM_REGISTRY = ("ADVERSARIES", "EAT", "MSD", "RAMP", "TRAIN_ATTACKS", "Adversary",
                  "AdversaryOutput", "Avg", "Max", "SingleNorm", "Standard", "TrainingStep",
                  "eat_choice", "kl_on_correct", "make_adversary", "train_attack_delta")

__all__ = ["Option", "catalog", *_FROM_REGISTRY]


def __getattr__(name: str):
    if name not in _FROM_REGISTRY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from msd_tf.adversaries import registry

    return getattr(registry, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
