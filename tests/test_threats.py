import dataclasses
import json

import pytest

from msd_tf import threats
from msd_tf.threats import ThreatModel


@pytest.mark.parametrize("field, kwargs", [
    ("eps", dict(eps=0.0)), ("eps", dict(eps=-0.1)), ("eps", dict(eps=float("nan"))),
    ("alpha", dict(alpha=0)), ("steps", dict(steps=0)), ("restarts", dict(restarts=0)),
    ("k_range", dict(l1=dict(k_range=(20, 5)))), ("norm", dict(norm="l3")),
    ("projection", dict(l1=dict(projection="other"))), ("gap", dict(l1=dict(gap=0.5))),
    ("l1", dict(l1=dict(k=3))), ("l1", dict(norm="linf", l1=dict())),
    ("l1", dict(l1=(5, 20))),
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


def test_a_config_json_with_flat_l1_fields_is_the_same_experiment():
    from msd_tf.config import TrainConfig, experiment_of

    config = TrainConfig(threats=(
        ThreatModel("linf", 0.3, 0.01, 5),
        ThreatModel("l1", 10.0, 1.0, 5, restarts=2,
                    l1=threats.L1Step(k_range=(2, 10), projection="exact"))))
    saved = json.loads(config.to_json())
    # As written before the l_1 settings moved into `ThreatModel.l1`: on every threat.
    for t in saved["threats"]:
        l1 = t.pop("l1") or {"k_range": [5, 20], "gap": 0.05, "projection": "clip_then_project"}
        t.update(k_range=l1["k_range"], l1_gap=l1["gap"], l1_projection=l1["projection"])
    expected = config.experiment("")
    del expected["train_data_sha256"]
    assert experiment_of(saved) == expected  # the run resumes
    saved["threats"][1]["l1_projection"] = "clip_then_project"
    assert experiment_of(saved) != expected  # another projection is another experiment
    assert experiment_of(saved)["threats"][0]["l1"] is None
