"""Two fixes that foolbox 3.3.4 needs here, applied locally (no global NumPy change).

1. eagerpy 0.30 (foolbox's tensor backend) calls `np.find_common_type`, which NumPy 2
   removed; every mixed-dtype operation on a TensorFlow tensor then fails. We give
   eagerpy's TensorFlow module its own view of NumPy in which `find_common_type` is
   `np.result_type` (identical for the array-dtype-only calls eagerpy makes). NumPy
   itself is not modified.
2. `foolbox.attacks.PointwiseAttack.__init__` never calls its base initializer, so
   the attack has no `distance` and fails when it needs one. `PointwiseAttack` below
   takes the distance explicitly (l_2 or l_1, per threat model) and sets it.

Import `foolbox` through `get_foolbox()` so that the fixes are in place.
"""

import types

import numpy as np

_PATCHED = False


class _NumpyView(types.ModuleType):
    """NumPy with `find_common_type` restored, for eagerpy's module only."""

    def __init__(self):
        super().__init__("numpy_for_eagerpy")

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def find_common_type(array_types, scalar_types):
        return np.result_type(*array_types, *scalar_types)


def get_foolbox():
    """Returns the `foolbox` module with the fixes above applied (idempotent)."""
    global _PATCHED
    import eagerpy.tensor.tensorflow as ep_tf
    import foolbox

    if not _PATCHED and not hasattr(np, "find_common_type"):
        ep_tf.np = _NumpyView()
    _PATCHED = True
    return foolbox


def pointwise_attack(distance: str, init_attack=None):
    """foolbox's PointwiseAttack with its distance set ("l2" or "l1")."""
    fb = get_foolbox()
    attack = fb.attacks.PointwiseAttack(init_attack=init_attack)
    attack._distance = {"l2": fb.distances.l2, "l1": fb.distances.l1}[distance]
    return attack
