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



@pytest.fixture
def small_severity(monkeypatch):
    """200 images per severity instead of 10,000: the same layout, files of 3 MB."""
    monkeypatch.setattr(corruptions, "PER_SEVERITY", 200)
    return 200


def _write_distributed(folder, corruptions_=("fog",)):
    """CIFAR-10-C as distributed: per corruption 5 x n images stacked (severity 1 first),
    labels.npy the test labels tiled 5 times. Every image is one grey level that encodes
    (severity, index) so the slice read back can be checked exactly."""
    n = corruptions.PER_SEVERITY
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(folder / "labels.npy", labels)
    for c in corruptions_:
        level = (np.repeat(np.arange(1, 6), n) * 40 + np.tile(np.arange(n) % 7, 5))
        images = np.broadcast_to(level[:, None, None, None], (5 * n, 32, 32, 3))
        np.save(folder / f"{c}.npy", images.astype(np.uint8))


def test_npy_loader_reads_the_distributed_layout(tmp_path, small_severity):
    sub = tmp_path / "CIFAR-10-C"
    sub.mkdir()
    _write_distributed(sub)
    load = corruptions.npy_loader(str(tmp_path))  # the parent folder works too
    idx = np.arange(small_severity)
    for severity in (1, 3, 5):
        x, y = load("fog", severity)
        assert x.shape == (small_severity, 32, 32, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x[:, 0, 0, 0], (severity * 40 + idx % 7) / 255.0)
        np.testing.assert_array_equal(y, idx % 10)
    assert corruptions.npy_loader(str(sub))("fog", 2)[0][0, 0, 0, 0] == np.float32(80 / 255)


def test_npy_loader_refuses_missing_and_wrong_files(tmp_path, small_severity):
    with pytest.raises(data.DataError, match="labels.npy"):
        corruptions.npy_loader(str(tmp_path))
    _write_distributed(tmp_path)
    load = corruptions.npy_loader(str(tmp_path))
    with pytest.raises(data.DataError, match="snow.npy is missing"):
        load("snow", 1)
    np.save(tmp_path / "frost.npy", np.zeros((small_severity, 32, 32, 3), np.uint8))
    with pytest.raises(data.DataError, match="expected"):
        load("frost", 1)
    (tmp_path / "zoom_blur.npy").write_bytes(b"not numpy")
    with pytest.raises(data.DataError, match="not a readable"):
        load("zoom_blur", 1)


def test_corruptions_of_a_saved_model_from_data_dir_beside_the_paper(tmp_path, monkeypatch,
                                                                      small_severity):
    """pipeline.evaluate_corruptions (what `--corruptions --data_dir` runs) on a
    SavedModel in a folder named as the paper's MSD."""
    import keras

    from msd_tf import export
    from msd_tf.benchmarks import paper
    from msd_tf.evaluation import pipeline

    monkeypatch.setattr(corruptions, "STANDARD", ("fog", "snow"))
    _write_distributed(tmp_path, ("fog", "snow"))
    inputs = keras.Input((32, 32, 3))
    # Predicts class (255 * mean pixel // 40 + 3) % 10: from the image only.
    logits = keras.layers.Lambda(lambda x: keras.ops.one_hot(
        (keras.ops.cast(keras.ops.mean(x, axis=(1, 2, 3)) * 255.0 // 40.0, "int32") + 3)
        % 10, 10))(inputs)
    folder = tmp_path / "msd"
    export.export_saved_model(keras.Model(inputs, logits), str(folder / "saved_model"),
                              metadata={"dataset": "cifar10"})
    out = tmp_path / "out"
    pipeline.evaluate_corruptions([str(folder / "saved_model")], dataset="cifar10",
                                  output_dir=str(out), which="standard", num_examples=100,
                                  data_dir=str(tmp_path), paper=paper.TABLE_7)
    md = (out / "corruptions.md").read_text()
    # Severity s images have level 40 s + i % 7: predicted (s + 3) % 10 against i % 10.
    want = np.mean([np.mean((s + 3) % 10 == np.arange(100) % 10) for s in range(1, 6)])
    assert f"| fog | {100 * want:.1f} |" in md and "| msd |" in md.splitlines()[0]
    assert "| paper, Table 7 (mean) | 74.2 |" in md
