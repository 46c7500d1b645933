import zlib

import numpy as np
import pytest

from msd_tf import data
from msd_tf.evaluation import corruptions


def _loader(corruption, severity):
    """50 images whose brightness encodes a class (read back by `_brightness_model`):
    the right label for a share of them that depends on (corruption, severity)."""
    rng = np.random.default_rng(zlib.crc32(f"{corruption}/{severity}".encode()))
    y = rng.integers(0, 10, size=50).astype(np.int32)
    share = {1: 0.9, 5: 0.3}.get(severity, 0.5) * (0.5 if corruption == "fog" else 1.0)
    shown = np.where(rng.uniform(size=50) < share, y, (y + 1) % 10)
    x = np.broadcast_to((shown / 10.0 + 0.05)[:, None, None, None], (50, 32, 32, 3))
    return x.astype(np.float32), y


def _brightness_model(x):
    """Predicts class round(10 * mean pixel - 0.5): depends on the images only."""
    cls = np.clip(np.round(10 * np.asarray(x).reshape(len(x), -1).mean(1) - 0.5), 0, 9)
    return np.eye(10, dtype=np.float32)[cls.astype(int)]


def _accuracy(corruption, severity, n=None):
    x, y = _loader(corruption, severity)
    return np.mean(_brightness_model(x[:n]).argmax(1) == y[:n])


def test_accuracy_per_corruption_and_severity_from_the_images():
    res = corruptions.corruption_accuracy(_brightness_model, loader=_loader,
                                          corruptions=("fog", "snow", "spatter"),
                                          severities=(1, 5))
    for c in ("fog", "snow", "spatter"):
        for s in (1, 5):
            assert res["by_severity"][c][s] == pytest.approx(_accuracy(c, s))
        assert res["per_corruption"][c] == pytest.approx(
            np.mean([_accuracy(c, s) for s in (1, 5)]))
    # The settings differ, so mixing images of two settings would show.
    assert res["by_severity"]["snow"][1] > res["by_severity"]["snow"][5]
    assert res["by_severity"]["fog"][1] < res["by_severity"]["snow"][1]
    # spatter is one of the 4 "extra" corruptions: not in the standard-15 mean.
    assert res["mean_standard"] == pytest.approx(
        np.mean([res["per_corruption"]["fog"], res["per_corruption"]["snow"]]))
    assert len(corruptions.STANDARD) == 15
    # num_examples keeps the first N of every setting.
    first = corruptions.corruption_accuracy(_brightness_model, loader=_loader,
                                            corruptions=("snow",), severities=(5,),
                                            num_examples=20)
    assert first["by_severity"]["snow"][5] == pytest.approx(_accuracy("snow", 5, 20))


def test_evaluate_corruptions_writes_tables(tmp_path):
    def always_zero(x):
        return np.eye(10, dtype=np.float32)[np.zeros(len(x), int)]

    corruptions.evaluate_corruptions([("a", always_zero)], output_dir=str(tmp_path),
                                     loader=_loader, corruptions=("fog",), severities=(1,))
    md = (tmp_path / "corruptions.md").read_text()
    want = 100 * np.mean(_loader("fog", 1)[1] == 0)
    assert "| corruption | a |" in md and f"| fog | {want:.1f} |" in md


def test_cifar10_c_is_not_a_training_data_set():
    with pytest.raises(data.DataError, match="Unknown dataset"):
        data.load_arrays("cifar10_corrupted", "test")
