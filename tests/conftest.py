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
    _check_loadgroup(config)
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


def _check_loadgroup(config):
    """The README's command (`--dist=loadgroup`) keeps each `xdist_group` on one worker,
    so a group's expensive shared set-up runs once. pytest 9.2 with pytest-xdist 3.8 drops
    the groups silently (pytest-dev/pytest-xdist#1386): stop with the fix instead."""
    if os.environ.get("PYTEST_XDIST_WORKER") or config.getoption("dist", "no") != "loadgroup":
        return
    import xdist

    def version(text):
        return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())

    if version(pytest.__version__) >= (9, 2) and version(xdist.__version__) <= (3, 8):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} with pytest-xdist {xdist.__version__} ignores "
            "xdist_group under --dist=loadgroup (pytest-dev/pytest-xdist#1386); install "
            "requirements-test.txt (pytest<9.2).")


@pytest.fixture
def mnist_dir():
    """The real MNIST test split in ../shared/data/mnist, or a skip with the reason."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    return SHARED_MNIST
