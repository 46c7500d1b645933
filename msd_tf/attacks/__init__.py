"""Attacks: one per file, each a graph-level `*_delta` function (used inside training) and
a public, compiled function returning adversarial images; `ATTACKS` names them all.

  pgd         PGD in one l_p ball (the paper's attack; Madry et al. 2018)
  mim         momentum iterative method, l_inf (Dong et al. 2018)
  apgd_ce     APGD with cross-entropy; apgd_dlr: with the DLR loss; apgd_t: targeted
              DLR over the most likely wrong classes (Croce and Hein 2020, 2021)
  fab_t       FAB-T, targeted minimal-norm boundary attack, kept within eps (Croce and
              Hein 2020)
  square      Square, gradient-free, l_inf, l_2 and l_1 (Andriushchenko et al. 2020)
  sparse_rs   Sparse-RS, gradient-free, in the l_1 ball (Croce et al. 2022)
  slide       SLIDE, sparse l_1 descent, project-then-clip (Tramer and Boneh 2019)
  msd         multi steepest descent over a union of balls (Maini et al. 2020)
  worst_case  MAX: the worst of PGD in every ball of a union

Adding an attack: one file with its `*_delta` and public function (`compiled.run`
gives the latter), one entry in `ATTACKS`; the contract test in
tests/attacks/test_contract.py then checks it in every norm it declares.
"""

import dataclasses
import functools
from typing import Callable

from msd_tf.attacks.apgd import apgd
from msd_tf.attacks.base import AttackOutput
from msd_tf.attacks.fab import fab_t, fab_t_delta
from msd_tf.attacks.losses import cross_entropy, dlr, margin, margin_loss
from msd_tf.attacks.mim import mim, mim_delta
from msd_tf.attacks.msd import msd, msd_delta
from msd_tf.attacks.pgd import pgd, pgd_delta
from msd_tf.attacks.slide import slide, slide_delta
from msd_tf.attacks.sparse_rs import sparse_rs, sparse_rs_delta
from msd_tf.attacks.square import square, square_delta
from msd_tf.attacks.worst_case import worst_case, worst_case_delta
from msd_tf.threats import NORMS


@dataclasses.dataclass(frozen=True)
class Attack:
    """A registered attack.

    Attributes:
      fn: the public function, `fn(model, x, y, threat, *, seed, ...) -> x_adv`; a
        union attack takes a sequence of threats instead of one.
      norms: the norms it attacks (a union attack: the norms its union may hold).
      union: takes every threat of a union at once.
      queries: its budget is `n_queries` (forward passes), not the threat's `steps`.
    """

    fn: Callable
    norms: tuple[str, ...]
    union: bool = False
    queries: bool = False


ATTACKS = {
    "pgd": Attack(pgd, NORMS),
    "mim": Attack(mim, ("linf",)),
    "apgd_ce": Attack(functools.partial(apgd, loss="ce"), NORMS),
    "apgd_dlr": Attack(functools.partial(apgd, loss="dlr"), NORMS),
    "apgd_t": Attack(functools.partial(apgd, loss="dlr_targeted"), NORMS),
    "fab_t": Attack(fab_t, NORMS),
    "square": Attack(square, NORMS, queries=True),
    "sparse_rs": Attack(sparse_rs, ("l1",), queries=True),
    "slide": Attack(slide, ("l1",)),
    "msd": Attack(msd, NORMS, union=True),
    "worst_case": Attack(worst_case, NORMS, union=True),
}

__all__ = [
    "ATTACKS", "Attack", "AttackOutput", "apgd", "cross_entropy", "dlr", "fab_t", "fab_t_delta",
    "margin", "margin_loss", "mim", "mim_delta", "msd", "msd_delta", "pgd", "pgd_delta",
    "slide", "slide_delta", "sparse_rs", "sparse_rs_delta", "square", "square_delta",
    "worst_case", "worst_case_delta",
]
