"""One contract for every registered attack: in ball and box, accuracy under attack
<= clean accuracy, same seed gives the same result."""

import numpy as np
import pytest

from msd_tf import attacks, threats
from tests.attacks.helpers import digits, norms_of, small_cnn

MNIST = threats.presets("mnist", phase="train")
SHORT = tuple(t.replace(steps=5, random_start=True) for t in MNIST)

CASES = {
    "pgd_linf": lambda m, x, y, s: attacks.pgd(m, x, y, SHORT[0], seed=s),
    "pgd_l2": lambda m, x, y, s: attacks.pgd(m, x, y, SHORT[1], seed=s),
    "pgd_l1": lambda m, x, y, s: attacks.pgd(m, x, y, SHORT[2], seed=s),
    "mim": lambda m, x, y, s: attacks.mim(m, x, y, SHORT[0].replace(alpha=0.06), seed=s),
    "msd": lambda m, x, y, s: attacks.msd(m, x, y, MNIST, steps=5, seed=s),
    "worst_case": lambda m, x, y, s: attacks.worst_case(m, x, y, SHORT, seed=s),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_contract(name):
    model = small_cnn(seed=11)
    x, y = digits(16, seed=12)
    y = model(x).numpy().argmax(1).astype(np.int32)  # all clean-correct
    x_adv = CASES[name](model, x, y, 3).numpy()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    n = norms_of(x_adv, x)
    ok = np.zeros(len(x), bool)
    for t in MNIST:
        ok |= n[t.norm] <= t.eps * (1 + 1e-5)
    if name.startswith("pgd") or name == "mim":
        t = {"pgd_linf": MNIST[0], "pgd_l2": MNIST[1], "pgd_l1": MNIST[2], "mim": MNIST[0]}[name]
        ok = n[t.norm] <= t.eps * (1 + 1e-5)
    assert np.all(ok)
    acc_adv = np.mean(model(x_adv).numpy().argmax(1) == y)
    assert acc_adv < 1.0  # clean accuracy is 1 here; the attack must break something
    # Same seed: equal up to float reordering of concurrent ops (bit-exact: --deterministic).
    np.testing.assert_allclose(CASES[name](model, x, y, 3).numpy(), x_adv, atol=1e-5)
