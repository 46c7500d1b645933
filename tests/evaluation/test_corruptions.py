import numpy as np
import pytest

from msd_tf import data
from msd_tf.evaluation import corruptions


def _loader(corruption, severity):
    # Labels depend on corruption and severity, so the table must keep them apart.
    rng = np.random.default_rng(hash((corruption, severity)) % 2**32)
    y = rng.integers(0, 10, size=50).astype(np.int32)
    return rng.uniform(size=(50, 32, 32, 3)).astype(np.float32), y


def test_accuracy_per_corruption_and_severity_with_a_hand_checkable_model():
    def always_three(x):
        out = np.zeros((len(x), 10), np.float32)
        out[:, 3] = 1.0
        return out

    res = corruptions.corruption_accuracy(always_three, loader=_loader,
                                          corruptions=("fog", "snow", "spatter"),
                                          severities=(1, 5))
    for c in ("fog", "snow", "spatter"):
        for s in (1, 5):
            assert res["by_severity"][c][s] == pytest.approx(np.mean(_loader(c, s)[1] == 3))
        assert res["per_corruption"][c] == pytest.approx(
            np.mean([res["by_severity"][c][s] for s in (1, 5)]))
    # spatter is one of the 4 "extra" corruptions: not in the standard-15 mean.
    assert res["mean_standard"] == pytest.approx(
        np.mean([res["per_corruption"]["fog"], res["per_corruption"]["snow"]]))
    assert len(corruptions.STANDARD) == 15


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
