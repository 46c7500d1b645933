"""Pins what training and the evaluation compute for fixed inputs, so that a change of
behaviour cannot slip past the committed per-model results (docs/results/): their keys hold
`benchmarks.units.BEHAVIOUR_VERSION` and `EVALUATION_VERSION`, not the code. When this
fails after a change that is meant to alter numbers, raise the version (training: every
committed result is retrained; the evaluation's runner: re-evaluated) and write the new
values here; when it is not meant to, fix the change."""

import keras
import numpy as np
import pytest

from msd_tf import threats
from msd_tf.adversaries import make_adversary
from msd_tf.attacks import apgd, pgd
from msd_tf.benchmarks import units
from msd_tf.training import AdversarialTrainer
from tests.attacks.helpers import digits, small_cnn

# Measured at BEHAVIOUR_VERSION 1 (float32, 2-core Intel Xeon; the tolerance covers other
# CPUs' float32 kernels).
PINNED = {1: {"clean": 25, "msd_losses": [3.5976, 2.6449], "pgd_l1_robust": 19,
              "apgd_linf_robust": 13}}
# The evaluation's runner at EVALUATION_VERSION 2 (examples packed across windows; AMD Zen 3,
# float32): which digits survive an added attack depends on the batches and seeds it draws
# them with.
PINNED_EVALUATION = {2: {"fgsm_broken": 13, "apgd_t_robust": 14}}
UNION = tuple(t.replace(steps=3, alpha=t.eps / 3) for t in threats.presets("mnist",
                                                                            phase="train"))


def _measure():
    x, y = digits(64, seed=5)
    model = small_cnn(seed=1)
    trainer = AdversarialTrainer(model, make_adversary("msd", UNION, msd_steps=3), seed=0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = trainer.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    small = {"l1": 1.0, "linf": 0.02}  # radii at which some but not all digits stay robust
    l1 = threats.preset("mnist", "l1")
    x_adv = pgd(model, x, y, l1.replace(restarts=1, eps=small["l1"], alpha=0.2), seed=0)
    robust_l1 = int(np.sum(np.argmax(model(x_adv), 1) == y))
    linf = threats.preset("mnist", "linf")
    x_adv = apgd(model, x, y, linf.replace(eps=small["linf"]), loss="ce", seed=0)
    robust_linf = int(np.sum(np.argmax(model(x_adv), 1) == y))
    clean = int(np.sum(np.argmax(model(x), 1) == y))
    return {"clean": clean, "msd_losses": [round(v, 4) for v in history["adv_loss"]],
            "pgd_l1_robust": robust_l1, "apgd_linf_robust": robust_linf}


def _measure_evaluation(tmp_path):
    import dataclasses

    from msd_tf.evaluation import runner, suite
    from msd_tf.evaluation.records import EvalConfig

    x, y = digits(64, seed=5)
    model = small_cnn(seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    specs = [dataclasses.replace(s, eps=0.04, only_robust=True)
             for s in (*suite.paper_suite("mnist", restarts=1, budget="fast"),
                       *suite.strong_additions("mnist", restarts=1, budget="fast"))
             if s.name in ("fgsm", "apgd_t_linf")]
    config = EvalConfig("mnist", specs, output_dir=str(tmp_path), batch_size=24,
                        verbose=False)
    clean, records, _ = runner.run_suite("m", "f" * 64, lambda v: model(v, training=False),
                                         x, y, config)
    fgsm = records["fgsm"].broken()
    return {"fgsm_broken": int(fgsm.sum()),
            "apgd_t_robust": int(np.sum(clean & ~fgsm & ~records["apgd_t_linf"].broken()))}


def test_the_evaluation_is_what_the_committed_results_were_measured_with(tmp_path):
    pinned = PINNED_EVALUATION.get(units.EVALUATION_VERSION)
    assert pinned is not None, "add this EVALUATION_VERSION's values to PINNED_EVALUATION"
    got = _measure_evaluation(tmp_path)
    assert abs(got["fgsm_broken"] - pinned["fgsm_broken"]) <= 1
    assert abs(got["apgd_t_robust"] - pinned["apgd_t_robust"]) <= 1


def test_behaviour_is_what_the_committed_results_were_measured_with():
    pinned = PINNED.get(units.BEHAVIOUR_VERSION)
    assert pinned is not None, "add this BEHAVIOUR_VERSION's values to PINNED"
    got = _measure()
    np.testing.assert_allclose(got["msd_losses"], pinned["msd_losses"], rtol=2e-3)
    assert abs(got["clean"] - pinned["clean"]) <= 1
    assert abs(got["pgd_l1_robust"] - pinned["pgd_l1_robust"]) <= 1
    assert abs(got["apgd_linf_robust"] - pinned["apgd_linf_robust"]) <= 1


if __name__ == "__main__":
    import tempfile

    print(_measure())
    with tempfile.TemporaryDirectory() as d:
        print(_measure_evaluation(d))
    pytest.main([__file__])
