import dataclasses

import pytest

from msd_tf import threats
from msd_tf.threats import ThreatModel


@pytest.mark.parametrize("field, kwargs", [
    ("eps", dict(eps=0.0)), ("eps", dict(eps=-0.1)), ("eps", dict(eps=float("nan"))),
    ("alpha", dict(alpha=0)), ("steps", dict(steps=0)), ("restarts", dict(restarts=0)),
    ("k_range", dict(k_range=(20, 5))), ("norm", dict(norm="l3")),
    ("l1_projection", dict(l1_projection="other")),
])
def test_invalid_fields_raise_naming_the_field(field, kwargs):
    args = dict(norm="l1", eps=10.0, alpha=0.8, steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"`{field}`"):
        ThreatModel(**args)


def test_presets_follow_appendix_c1():
    # (alpha, eps, train iterations, test iterations), PAPER_NOTES section 5.
    table = {
        ("mnist", "linf"): (0.01, 0.3, 50, 100), ("mnist", "l2"): (0.1, 2.0, 100, 200),
        ("mnist", "l1"): (0.8, 10, 50, 100), ("cifar10", "linf"): (0.003, 0.03, 40, 100),
        ("cifar10", "l2"): (0.05, 0.5, 50, 500), ("cifar10", "l1"): (1.0, 12, 50, 100),
    }
    for (ds, norm), (alpha, eps, tr, te) in table.items():
        t = threats.preset(ds, norm, phase="train")
        assert (t.norm, t.alpha, t.eps, t.steps) == (norm, alpha, eps, tr)
        assert threats.preset(ds, norm).steps == te
    assert threats.preset("mnist", "l1").restarts == 2
    assert threats.preset("mnist", "linf").restarts == 1
    with pytest.raises(ValueError, match="No preset"):
        threats.preset("svhn", "linf")


def test_threat_model_is_immutable_and_hashable():
    t = ThreatModel("l2", 2, 0.1, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.eps = 3.0
    assert {t: 1}[t.replace()] == 1 and t.eps == 2.0 and isinstance(t.eps, float)
