"""Test setup: two logical CPU devices (for MirroredStrategy tests), quiet TF logs.

Runs before any TF op, as Keras' distribute tests do. No TF ops at import time in
the test modules themselves.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import msd_tf  # noqa: E402,F401  (before TensorFlow, as every entry point: oneDNN on by default)

# isort: split

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def pytest_configure(config):
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture
def mnist_dir():
    """The real MNIST test split in ../shared/data/mnist, or a skip with the reason."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    return SHARED_MNIST
