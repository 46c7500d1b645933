"""One contract for every attack of `attacks.ATTACKS`, in every norm it declares: the
result lies in the ball (a union attack: in one of its balls) and the box, breaks most
examples of an undefended model, and is the same for the same seed."""

import numpy as np
import pytest

from msd_tf import threats
from msd_tf.attacks import ATTACKS
from tests.attacks.helpers import digits, norms_of, small_cnn

# The paper's MNIST radii; 10 iterations of steps eps / 4 that can cross the ball.
BALLS = {t.norm: t.replace(steps=10, alpha=t.eps / 4, random_start=True)
         for t in threats.presets("mnist", phase="train")}
CASES = [(name, norm) for name, a in ATTACKS.items()
         for norm in (("union",) if a.union else a.norms)]


def _run(name, norm, model, x, y, seed):
    attack = ATTACKS[name]
    target = tuple(BALLS.values()) if attack.union else BALLS[norm]
    budget = {"n_queries": 300} if attack.queries else {}
    return attack.fn(model, x, y, target, seed=seed, **budget).numpy()


@pytest.mark.parametrize("name, norm", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_attack_contract(name, norm):
    model = small_cnn(seed=11)
    x, y = digits(16, seed=12)
    y = model(x).numpy().argmax(1).astype(np.int32)  # all clean-correct
    x_adv = _run(name, norm, model, x, y, 3)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    n = norms_of(x_adv, x)
    balls = BALLS.values() if norm == "union" else [BALLS[norm]]
    inside = np.zeros(len(x), bool)
    for t in balls:
        inside |= n[t.norm] <= t.eps * (1 + 1e-5)
    assert np.all(inside)
    acc_adv = np.mean(model(x_adv).numpy().argmax(1) == y)
    assert acc_adv <= 0.5, f"{name} ({norm}) left {acc_adv:.0%} of an undefended model robust"
    # Same seed: equal up to float reordering of concurrent ops (bit-exact: --deterministic).
    np.testing.assert_allclose(_run(name, norm, model, x, y, 3), x_adv, atol=1e-5)


def test_every_attack_is_covered():
    assert {n for n, _ in CASES} == set(ATTACKS)
    assert ("square", "l1") in CASES and ("sparse_rs", "l1") in CASES
