"""Attacks: PGD in one ball, MSD and MAX over a union of balls.

`ATTACKS` maps a name to a graph-level function
`(model, x, y, threats, seed, *, training, loss_fn) -> AttackOutput`.
"""

from msd_tf.attacks.apgd import apgd, dlr_loss
from msd_tf.attacks.base import AttackOutput, cross_entropy
from msd_tf.attacks.mim import mim, mim_delta
from msd_tf.attacks.msd import msd, msd_delta
from msd_tf.attacks.pgd import pgd, pgd_delta
from msd_tf.attacks.worst_case import worst_case, worst_case_delta

__all__ = [
    "AttackOutput", "apgd", "cross_entropy", "dlr_loss", "mim", "mim_delta", "msd",
    "msd_delta", "pgd", "pgd_delta", "worst_case", "worst_case_delta",
]
