import numpy as np
import tensorflow as tf

from msd_tf.attacks import pgd_delta, worst_case_delta
from msd_tf.seeding import as_seed, fold
from msd_tf.threats import ThreatModel
from tests.attacks.helpers import digits, small_cnn


def test_worst_case_keeps_highest_loss_pgd_per_example():
    model = small_cnn(seed=1)
    x, y = digits(16, seed=2)
    ths = (ThreatModel("linf", 0.1, 0.02, 4), ThreatModel("l2", 1.0, 0.2, 4),
           ThreatModel("l1", 5.0, 1.0, 4))
    seed = as_seed(3)
    out = worst_case_delta(model, tf.constant(x), tf.constant(y), ths, seed)
    singles = [pgd_delta(model, tf.constant(x), tf.constant(y), t, fold(seed, i))
               for i, t in enumerate(ths)]
    losses = np.stack([s.loss.numpy() for s in singles])
    for b in range(len(x)):
        i = int(np.argmax(losses[:, b]))
        assert out.choice.numpy()[b] == i
        np.testing.assert_allclose(out.delta.numpy()[b], singles[i].delta.numpy()[b])
    np.testing.assert_allclose(out.loss.numpy(), losses.max(0))
