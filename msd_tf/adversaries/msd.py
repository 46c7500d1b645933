"""MSD as a training adversary (Maini, Wong and Kolter, ICML 2020, arXiv:1909.04068)."""

from msd_tf.adversaries.base import Adversary, AdversaryOutput, _per_norm
from msd_tf.attacks import msd_delta
from msd_tf.attacks.base import adversarial_images


class MSD(Adversary):
    """Multi steepest descent (Algorithm 1): the worst of the steps at every iteration.

    Args:
      msd_steps: MSD iterations (None: the largest `steps` of `threats`).
      threats, **kwargs: as for `Adversary`.
    """

    takes_msd_steps = True

    def __init__(self, threats=(), *, msd_steps: int | None = None, **kwargs):
        super().__init__(threats, **kwargs)
        self.msd_steps = msd_steps

    def perturb(self, model, x, y, *, seed, shared_seed):
        out = msd_delta(model, x, y, self.threats, seed, steps=self.msd_steps,
                        training=self.attack_training)
        return AdversaryOutput(adversarial_images(x, out.delta), y,
                               _per_norm(out.counts, self.threats))
