"""Two fixes that foolbox 3.3.4 needs here, applied locally (no global NumPy change).

1. eagerpy 0.30 (foolbox's tensor backend) calls `np.find_common_type`, which NumPy 2
   removed; every mixed-dtype operation on a TensorFlow tensor then fails. We give
   eagerpy's TensorFlow module its own view of NumPy in which `find_common_type` is
   `np.result_type` (identical for the array-dtype-only calls eagerpy makes). NumPy
   itself is not modified.
2. `foolbox.attacks.PointwiseAttack.__init__` never calls its base initializer, so
   the attack has no `distance` and fails when it needs one. `pointwise_attack` below
   takes the distance explicitly (l_2 or l_1, per threat model) and sets it.
3. PointwiseAttack indexes with a tuple holding a Python list, which eagerpy's
   TensorFlow `index_update` cannot take ("'list' object has no attribute 'dtype'"):
   with TensorFlow the attack never ran. We convert such lists (and NumPy index
   arrays) to int64 tensors in eagerpy's `TensorFlowTensor.index_update`, and make
   its `__getitem__` apply a boolean mask with `tf.boolean_mask` instead of passing
   it to `tf.gather`
   (eagerpy's class only; other indexing is unchanged).

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

    if not _PATCHED:
        if not hasattr(np, "find_common_type"):
            ep_tf.np = _NumpyView()
        _patch_index_update(ep_tf.TensorFlowTensor)
        _patch_boolean_getitem(ep_tf.TensorFlowTensor)
    _PATCHED = True
    return foolbox


def _patch_index_update(cls):
    import tensorflow as tf

    original = cls.index_update

    def index_update(self, indices, values):
        if isinstance(indices, tuple):
            indices = tuple(tf.constant(i, tf.int64) if isinstance(i, (list, np.ndarray))
                            else i for i in indices)
        elif isinstance(indices, np.ndarray):  # 1-D integer positions along axis 0
            raw_values = getattr(values, "raw", values)
            return type(self)(tf.tensor_scatter_nd_update(
                self.raw, tf.constant(indices, tf.int64)[:, None], raw_values))
        return original(self, indices, values)

    cls.index_update = index_update


def _patch_boolean_getitem(cls):
    import tensorflow as tf

    original = cls.__getitem__

    def getitem(self, index):
        raw = getattr(index, "raw", index)
        if isinstance(raw, (tf.Tensor, np.ndarray)) and raw.dtype in (tf.bool, np.bool_):
            return type(self)(tf.boolean_mask(self.raw, raw))
        return original(self, index)

    cls.__getitem__ = getitem


def pointwise_attack(distance: str, init_attack=None):
    """foolbox's PointwiseAttack with its distance set ("l2" or "l1")."""
    fb = get_foolbox()
    attack = fb.attacks.PointwiseAttack(init_attack=init_attack)
    attack._distance = {"l2": fb.distances.l2, "l1": fb.distances.l1}[distance]
    return attack
