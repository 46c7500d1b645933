import numpy as np
import tensorflow as tf

from msd_tf.evaluation import foolbox_compat


def test_eagerpy_mixed_dtypes_work_under_numpy_2():
    fb = foolbox_compat.get_foolbox()
    import eagerpy as ep

    a = ep.astensor(tf.constant([1.0, 2.0], tf.float32))
    b = ep.astensor(tf.constant([1.0, 2.0], tf.float64))
    out = (a < b + 1).raw  # comparisons go through eagerpy's find_common_type call
    assert out.dtype == tf.bool and out.numpy().all()
    assert not hasattr(np, "find_common_type") or np.__version__ < "2"  # numpy untouched
    assert fb.__version__ == "3.3.4"


def test_pointwise_attack_has_its_distance():
    fb = foolbox_compat.get_foolbox()
    assert foolbox_compat.pointwise_attack("l1").distance is fb.distances.l1
    assert foolbox_compat.pointwise_attack("l2").distance is fb.distances.l2
