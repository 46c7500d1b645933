"""The compiled-attack cache holds a model only while the caller does: an
evaluation of many models in one process (`reproduce` evaluates seven) must not keep
every model and its traced graphs."""

import gc
import weakref

import numpy as np

from msd_tf import threats
from msd_tf.attacks import ATTACKS, compiled
from tests.attacks.helpers import digits, small_cnn


def test_a_model_attacked_and_dropped_is_garbage_collected():
    x, y = digits(4, seed=1)
    model = small_cnn(seed=2)
    alive = weakref.ref(model)
    for name, kwargs in (("pgd", {}), ("apgd_t", {"n_targets": 2}), ("square", {"n_queries": 3})):
        threat = threats.ThreatModel(norm="linf", eps=0.1, alpha=0.02, steps=2, restarts=2)
        ATTACKS[name].fn(model, x, y, threat, seed=0, **kwargs)
    assert alive() in compiled._CACHE  # cached while the model lives
    del model
    gc.collect()
    assert alive() is None, gc.get_referrers(alive()) if alive() else ""


def test_a_cached_function_still_works_while_the_model_lives():
    x, y = digits(4, seed=3)
    model = small_cnn(seed=4)
    threat = threats.ThreatModel(norm="l2", eps=0.5, alpha=0.1, steps=3)
    first = ATTACKS["pgd"].fn(model, x, y, threat, seed=1).numpy()
    gc.collect()
    again = ATTACKS["pgd"].fn(model, x, y, threat, seed=1).numpy()
    np.testing.assert_array_equal(first, again)
