import gzip
import pickle

import numpy as np
import pytest

from msd_tf import data


def _write_idx(path, array, magic, compress):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


def _idx_folder(tmp_path, n=30, compress=True, split="t10k"):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=n, dtype=np.uint8)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", x, 2051, compress)
    _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", y, 2049, compress)
    return x, y


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_round_trip(tmp_path, compress):
    x, y = _idx_folder(tmp_path, compress=compress)
    xs, ys = data.load_arrays("mnist", "test[5:25]", str(tmp_path))
    assert xs.shape == (20, 28, 28, 1) and xs.dtype == np.float32
    np.testing.assert_allclose(xs[..., 0], x[5:25] / 255.0)
    np.testing.assert_array_equal(ys, y[5:25])


def test_idx_reader_errors_name_the_problem(tmp_path):
    _idx_folder(tmp_path)
    with pytest.raises(data.DataError, match="missing train-images-idx3-ubyte"):
        data.load_arrays("mnist", "train", str(tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    _idx_folder(bad)
    _write_idx(bad / "t10k-images-idx3-ubyte.gz", np.zeros((30, 28, 28)), 2049, True)
    with pytest.raises(data.DataError, match="magic number 2049, expected 2051"):
        data.load_arrays("mnist", "test", str(bad))
    with gzip.open(bad / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write((2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (30, 28, 28))
                + b"\0" * 100)
    with pytest.raises(data.DataError, match="header says shape"):
        data.load_arrays("mnist", "test", str(bad))
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    _idx_folder(wrong)
    _write_idx(wrong / "t10k-labels-idx1-ubyte.gz", np.full(30, 12), 2049, True)
    with pytest.raises(data.DataError, match="labels must be integers in"):
        data.load_arrays("mnist", "test", str(wrong))
    with pytest.raises(data.DataError, match="no such folder"):
        data.load_arrays("mnist", "test", str(tmp_path / "nope"))
    # Refused before any split is resolved (msd_tf.main: before TensorFlow loads).
    from msd_tf import protocol

    with pytest.raises(data.DataError, match="no such folder"):
        protocol.resolve("mnist", str(tmp_path / "nope"), "train", "test[:1000]")
    with pytest.raises(data.DataError, match="nope.npz: no such file"):
        data.check_source(str(tmp_path / "nope.npz"))
    data.check_source(None)  # the download path: nothing to check
    with pytest.raises(data.DataError, match="not of the form"):
        data.parse_split("validation")


def test_cifar_batches_reader(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = rng.integers(0, 256, size=(7, 3, 32, 32), dtype=np.uint8)
    labels = list(rng.integers(0, 10, size=7))
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": images.reshape(7, -1), b"labels": labels}, f)
    x, y = data.load_arrays("cifar10", "test", str(tmp_path))
    np.testing.assert_allclose(x, images.transpose(0, 2, 3, 1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(data.DataError, match="data_batch_1"):
        data.load_arrays("cifar10", "train", str(tmp_path))
    with open(folder / "test_batch", "wb") as f:
        f.write(b"not a pickle")
    with pytest.raises(data.DataError, match="not a CIFAR-10 python batch"):
        data.load_arrays("cifar10", "test", str(tmp_path))


def test_npz_reader(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(5, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(5), x_test=x, y_test=np.arange(5))
    xs, ys = data.load_arrays("fashion_mnist", "train", str(tmp_path / "d.npz"))
    np.testing.assert_allclose(xs[..., 0], x)
    np.savez(tmp_path / "e.npz", x_train=x * 255, y_train=np.arange(5))
    with pytest.raises(data.DataError, match=r"must lie in \[0, 1\]"):
        data.load_arrays("mnist", "train", str(tmp_path / "e.npz"))
    with pytest.raises(data.DataError, match="x_test"):
        data.load_arrays("mnist", "test", str(tmp_path / "e.npz"))


def test_real_mnist_test_split(mnist_dir):
    x, y = data.load_arrays("mnist", "test", str(mnist_dir))
    assert x.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958,
                                                   1028, 974, 1009])
    np.testing.assert_array_equal(y[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert x.mean() == pytest.approx(0.1325, abs=1e-4)


def _tfds_in(monkeypatch, folder):
    """tensorflow-datasets with an empty data folder (nothing prepared yet)."""
    import tensorflow_datasets as tfds

    real = tfds.builder
    monkeypatch.setattr(tfds, "builder", lambda name, **kw: real(name, data_dir=str(folder)))
    return tfds


def test_tfds_mnist_builder_reaches_its_download_step(monkeypatch, tmp_path):
    # A fresh install once failed on `import importlib_resources` inside
    # tensorflow-datasets, before any download, with an error blaming the network.
    tfds = _tfds_in(monkeypatch, tmp_path)
    reached = []

    def download(self, urls, *args, **kwargs):
        reached.append(urls)
        raise ConnectionError("download reached (test)")

    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", download)
    monkeypatch.setattr(data, "_resolvable", lambda host: True)
    with pytest.raises(data.DataError, match=r"download reached \(test\).*--data_dir"):
        data.load_arrays("mnist", "test")
    assert reached and "mnist" in str(reached[0])


def test_no_network_fails_at_once_with_the_offline_alternative(monkeypatch, tmp_path):
    _tfds_in(monkeypatch, tmp_path)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(data.socket, "getaddrinfo", lambda *a: (_ for _ in ()).throw(
        OSError("Name or service not known")))
    with pytest.raises(data.DataError,
                       match="no network.*flags/quickstart_offline.cfg.*--data_dir"):
        data.load_arrays("fashion_mnist", "train")


def test_a_missing_dependency_is_not_blamed_on_the_network(monkeypatch):
    import tensorflow_datasets as tfds

    def builder(name, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'",
                                  name="importlib_resources")

    monkeypatch.setattr(tfds, "builder", builder)
    with pytest.raises(data.DataError, match="dependency is missing.*importlib_resources") as e:
        data.load_arrays("mnist", "train")
    assert "network" not in str(e.value)


def test_truncated_and_non_gzip_idx_files_are_reported_by_name(tmp_path):
    _idx_folder(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    blob = images.read_bytes()
    images.write_bytes(blob[:len(blob) // 2])
    with pytest.raises(data.DataError, match="t10k-images-idx3-ubyte.gz: cannot be read.*"
                                             "truncated or corrupt"):
        data.load_arrays("mnist", "test", str(tmp_path))
    images.write_bytes(b"not gzip at all" * 10)
    with pytest.raises(data.DataError, match="truncated or corrupt"):
        data.load_arrays("mnist", "test", str(tmp_path))


def _labels(ds, n):
    return np.concatenate([b[1].numpy() for b in ds.take(n)])


def test_train_stream_is_seeded_and_resumable():
    x = np.zeros((50, 32, 32, 3), np.float32)
    x[:, 0, 0, 0] = np.arange(50) / 50
    y = np.arange(50, dtype=np.int32)
    full = _labels(data.train_dataset(x, y, batch_size=10, seed=3), 10)  # epochs 0 and 1
    assert sorted(full[:50]) == list(range(50)) and sorted(full[50:]) == list(range(50))
    assert not np.array_equal(full[:50], full[50:])  # reshuffled each epoch
    resumed = _labels(data.train_dataset(x, y, batch_size=10, seed=3, start_step=5), 5)
    np.testing.assert_array_equal(resumed, full[50:])
    mid = _labels(data.train_dataset(x, y, batch_size=10, seed=3, start_step=3), 4)
    np.testing.assert_array_equal(mid, full[30:70])  # resumes mid data-epoch too
    other = _labels(data.train_dataset(x, y, batch_size=10, seed=4), 5)
    assert not np.array_equal(other, full[:50])
    # Augmented stream: same seed and epoch give the same crops and flips.
    a = next(iter(data.train_dataset(x, y, batch_size=10, seed=3, augment=True)))[0].numpy()
    b = next(iter(data.train_dataset(x, y, batch_size=10, seed=3, augment=True)))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 32, 32, 3)
    with pytest.raises(data.DataError, match="fewer than batch_size"):
        data.train_dataset(x, y, batch_size=64, seed=0)


def _translations(image, pixels):
    """Brute force: every translation of `image` by (dy, dx) in [-pixels, pixels]^2,
    uncovered pixels zero."""
    h, w = image.shape[:2]
    out = {}
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            moved = np.zeros_like(image)
            moved[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            out[(dy, dx)] = moved
    return out


def _shifts_of(batch_x, batch_y, x, pixels):
    """The (dy, dx) of each augmented image (labels index the originals)."""
    found = []
    for image, label in zip(batch_x, batch_y):
        hits = [d for d, moved in _translations(x[label], pixels).items()
                if np.array_equal(moved, image)]
        assert len(hits) == 1, f"image of example {label} is no translation by <= {pixels}"
        found.append(hits[0])
    return found


def test_shift_translates_each_digit_by_at_most_the_given_pixels():
    rng = np.random.default_rng(0)
    # No zero pixel, so the zeros that fill in give each translation away (a unique match).
    x = rng.uniform(0.1, 1.0, size=(40, 8, 8, 1)).astype(np.float32)
    y = np.arange(40, dtype=np.int32)  # the label names the original
    stream = data.train_dataset(x, y, batch_size=20, seed=3, shift=2)
    batches = [(bx.numpy(), by.numpy()) for bx, by in stream.take(4)]  # data epochs 0 and 1
    shifts = [_shifts_of(bx, by, x, 2) for bx, by in batches]
    flat = [d for s in shifts for d in s]
    # Uniform over the 25 translations: 80 draws cover most of them, both signs of each axis.
    assert len(set(flat)) >= 15
    assert {dy for dy, _ in flat} == {-2, -1, 0, 1, 2} == {dx for _, dx in flat}
    # The same example gets other shifts in another data epoch.
    epoch0 = dict(zip(np.concatenate([by for _, by in batches[:2]]), shifts[0] + shifts[1]))
    epoch1 = dict(zip(np.concatenate([by for _, by in batches[2:]]), shifts[2] + shifts[3]))
    assert sum(epoch0[i] != epoch1[i] for i in range(40)) > 20
    # Seeded and resumable: batch 3 again from start_step=3, and all again with the seed.
    resumed = next(iter(data.train_dataset(x, y, batch_size=20, seed=3, start_step=3, shift=2)))
    np.testing.assert_array_equal(resumed[0].numpy(), batches[3][0])
    again = next(iter(data.train_dataset(x, y, batch_size=20, seed=3, shift=2)))[0].numpy()
    np.testing.assert_array_equal(again, batches[0][0])
    # shift=0 leaves the images as they are.
    bx, by = next(iter(data.train_dataset(x, y, batch_size=20, seed=3)))
    np.testing.assert_array_equal(bx.numpy(), x[by.numpy()])
