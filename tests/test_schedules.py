import numpy as np
import pytest

from msd_tf import schedules

# The paper's schedules (appendix C.2): MNIST Adam, CIFAR-10 SGD.
MNIST_ADAM = ((0.0, 6.0, 15.0), (0.0, 1e-3, 0.0))
CIFAR10_SGD = ((0.0, 20.0, 40.0, 50.0), (0.0, 0.1, 0.005, 0.0))


@pytest.mark.parametrize("knots", [MNIST_ADAM, CIFAR10_SGD])
def test_piecewise_linear_hits_knots_and_interpolates(knots):
    epochs, values = knots
    spe = 600
    lr = schedules.PiecewiseLinear(epochs, values, steps_per_epoch=spe)
    for e, v in zip(epochs, values):
        assert float(lr(int(e * spe))) == pytest.approx(v, rel=1e-6, abs=1e-9)
    for step in (1, 333, 2500, 7777, 20000, 10**6):
        assert float(lr(step)) == pytest.approx(np.interp(step / spe, epochs, values),
                                                rel=1e-5, abs=1e-9)


def test_mnist_schedule_at_hand_computed_points():
    lr = schedules.PiecewiseLinear(*MNIST_ADAM, steps_per_epoch=100)
    assert float(lr(300)) == pytest.approx(5e-4)  # epoch 3: half-way up
    assert float(lr(1050)) == pytest.approx(5e-4)  # epoch 10.5: half-way down
    assert float(lr(1500)) == 0.0


def test_bad_schedules_are_rejected():
    with pytest.raises(ValueError, match="increase"):
        schedules.PiecewiseLinear((0, 5, 5), (0, 1, 0), steps_per_epoch=1)
    with pytest.raises(ValueError, match="knots"):
        schedules.PiecewiseLinear((0,), (1,), steps_per_epoch=1)
