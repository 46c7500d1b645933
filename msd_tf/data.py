"""Data sets as in-memory arrays and seeded, resumable `tf.data` pipelines.

Importing this module does not import TensorFlow (the entry points decide its
settings first). Images are float32 in [0, 1], NHWC; labels int32. Batch sizes are global (a
distribution strategy splits them across replicas).

Sources, chosen by `data_dir`:
  - None: tensorflow-datasets (the real download path; needs the network once).
  - a folder of MNIST-format IDX files (`train-images-idx3-ubyte[.gz]`, ...,
    `t10k-labels-idx1-ubyte[.gz]`), e.g. Debian's `dataset-fashion-mnist` package
    (/usr/share/datasets/fashion-mnist) or ../shared/data/mnist;
  - a CIFAR-10 python batches folder (`data_batch_1..5`, `test_batch`);
  - an `.npz` file with `x_train, y_train, x_test, y_test`.
Splits: "train", "test", optionally sliced: "test[1000:]", "train[:5000]".
"""

import gzip
import os
import pickle
import re
import socket
import zlib
from typing import TYPE_CHECKING

import numpy as np

from msd_tf import seeding

if TYPE_CHECKING:
    import tensorflow as tf

DATASETS = {
    "mnist": dict(shape=(28, 28, 1), classes=10, tfds="mnist",
                  host="storage.googleapis.com"),
    "fashion_mnist": dict(shape=(28, 28, 1), classes=10, tfds="fashion_mnist",
                          host="fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    "cifar10": dict(shape=(32, 32, 3), classes=10, tfds="cifar10", host="www.cs.toronto.edu"),
}

_SPLIT = re.compile(r"^(train|test)(?:\[(-?\d*):(-?\d*)\])?$")
_IDX_PREFIX = {"train": "train", "test": "t10k"}


class DataError(ValueError):
    """A data source is missing, malformed or unreachable; the message says which."""


def parse_split(split: str) -> tuple[str, slice]:
    """"test[1000:]" -> ("test", slice(1000, None))."""
    m = _SPLIT.match(split.replace(" ", ""))
    if not m:
        raise DataError(f"Split {split!r} is not of the form train, test, test[a:b].")
    start, stop = (int(v) if v else None for v in (m.group(2), m.group(3)))
    return m.group(1), slice(start, stop)


def _open(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_idx(path: str, *, expect_magic: int) -> np.ndarray:
    """Reads one IDX file (gzip or plain), checking its magic number and size."""
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # truncated or not gzip
        raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e}); the file is "
                        "truncated or corrupt: download it again.") from e
    if len(data) < 8:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes).")
    magic = int.from_bytes(data[:4], "big")
    if magic != expect_magic:
        raise DataError(f"{path}: wrong IDX magic number {magic}, expected {expect_magic}.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path}: header says shape {dims} ({int(np.prod(dims))} bytes) but "
                        f"the file holds {len(body)} bytes.")
    return np.frombuffer(body, np.uint8).reshape(dims)


def _find(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise DataError(f"{folder}: missing {stem} (or {stem}.gz).")


def _load_idx(folder: str, split: str):
    prefix = _IDX_PREFIX[split]
    x = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"), expect_magic=2051)
    y = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"), expect_magic=2049)
    return x[..., None], y


def _load_cifar_batches(folder: str, split: str):
    sub = os.path.join(folder, "cifar-10-batches-py")
    folder = sub if os.path.isdir(sub) else folder
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise DataError(f"{folder}: missing CIFAR-10 batch file {name}.")
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            data = np.asarray(batch[b"data"], np.uint8)
            labels = np.asarray(batch[b"labels"])
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(f"{path}: not a CIFAR-10 python batch ({e}).") from e
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: data has shape {data.shape}, expected [N, 3072].")
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _load_npz(path: str, split: str):
    with np.load(path) as f:
        keys = (f"x_{split}", f"y_{split}")
        for k in keys:
            if k not in f:
                raise DataError(f"{path}: missing array {k!r} (has {sorted(f.files)}).")
        return f[keys[0]], f[keys[1]]


_OFFLINE_HINT = ("Offline, run the quickstart as python -m msd_tf.main "
                 "--flagfile=flags/quickstart_offline.cfg (MNIST from ../shared/data/mnist), "
                 "or pass --data_dir=<folder> with MNIST-format IDX files, the CIFAR-10 "
                 "python batches, or an .npz file.")


def _resolvable(host: str) -> bool:
    """False when `host` cannot be resolved (no network): fail at once, not after minutes
    of download retries. Behind a proxy, the proxy resolves it: not checked."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return True
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _load_tfds(dataset: str, split: str):
    info = DATASETS[dataset]
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(info["tfds"])
    except ImportError as e:  # a missing dependency, not the network
        raise DataError(
            f"tensorflow-datasets cannot load {dataset!r}: {type(e).__name__}: {e}. A "
            f"dependency is missing: pip install -r requirements.txt (or pip install "
            f"{e.name or 'the missing module'}).") from e
    if not builder.is_prepared():
        if not _resolvable(info["host"]):
            raise DataError(f"Could not download {dataset!r} through tensorflow-datasets: "
                            f"no network ({info['host']} cannot be resolved). "
                            + _OFFLINE_HINT)
        try:
            builder.download_and_prepare()
        except ImportError as e:
            raise DataError(f"tensorflow-datasets cannot prepare {dataset!r}: {e}. A "
                            "dependency is missing: pip install -r requirements.txt.") from e
        except Exception as e:  # noqa: BLE001 - network, checksum, disk... all mean "no data"
            raise DataError(
                f"Could not download {dataset!r} through tensorflow-datasets: "
                f"{type(e).__name__}: {' '.join(str(e).split())[:200]}. " + _OFFLINE_HINT) from e
    ds = builder.as_dataset(split=split, batch_size=-1, as_supervised=True)
    x, y = tfds.as_numpy(ds)
    return x, y


def has_split(dataset: str, split: str, data_dir: str | None) -> bool:
    """Whether `data_dir` holds the files of `split`'s base split (train or test), without
    reading them; True without a folder (tensorflow-datasets has both)."""
    base, _ = parse_split(split)
    if data_dir is None:
        return True
    if data_dir.endswith(".npz"):
        if not os.path.isfile(data_dir):
            return False
        with np.load(data_dir) as f:
            return f"x_{base}" in f.files and f"y_{base}" in f.files
    if dataset == "cifar10":
        sub = os.path.join(data_dir, "cifar-10-batches-py")
        folder = sub if os.path.isdir(sub) else data_dir
        return os.path.exists(os.path.join(
            folder, "data_batch_1" if base == "train" else "test_batch"))
    prefix = _IDX_PREFIX[base]
    return all(any(os.path.exists(os.path.join(data_dir, f"{prefix}-{kind}-ubyte{ext}"))
                   for ext in ("", ".gz")) for kind in ("images-idx3", "labels-idx1"))


def check_source(data_dir: str | None) -> None:
    """Raises DataError if `data_dir` is set but is no folder (or, ending in .npz, no
    file): checked before anything heavy starts (`protocol.resolve`) and by every load."""
    if data_dir is None:
        return
    if data_dir.endswith(".npz"):
        if not os.path.isfile(data_dir):
            raise DataError(f"--data_dir {data_dir}: no such file.")
    elif not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir}: no such folder.")


def load_arrays(dataset: str, split: str, data_dir: str | None = None):
    """Loads a split as `(x float32 [N, H, W, C] in [0, 1], y int32 [N])`.

    Raises:
      DataError: unknown data set, missing file, wrong magic number, shape, dtype or
        label range, or a failed download (the message shows the offline alternative).
    """
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}; known: {sorted(DATASETS)}.")
    info = DATASETS[dataset]
    base_split, sl = parse_split(split)
    check_source(data_dir)
    if data_dir is None:
        x, y = _load_tfds(dataset, base_split)
    elif data_dir.endswith(".npz"):
        x, y = _load_npz(data_dir, base_split)
    elif dataset == "cifar10":
        x, y = _load_cifar_batches(data_dir, base_split)
    else:
        x, y = _load_idx(data_dir, base_split)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[1:] != info["shape"]:
        raise DataError(f"{dataset} {split}: images have shape {x.shape[1:]}, "
                        f"expected {info['shape']}.")
    if len(x) != len(y) or y.ndim != 1:
        raise DataError(f"{dataset} {split}: {len(x)} images but labels of shape {y.shape}.")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if x.size and (x.min() < 0 or x.max() > 1):
            raise DataError(f"{dataset} {split}: float images must lie in [0, 1]; found "
                            f"[{x.min():.3g}, {x.max():.3g}].")
    else:
        raise DataError(f"{dataset} {split}: images of dtype {x.dtype}; expected uint8 or float.")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0
                                                              or y.max() >= info["classes"])):
        raise DataError(f"{dataset} {split}: labels must be integers in [0, {info['classes']}).")
    return x[sl], y[sl].astype(np.int32)


def _shift(image, pixels, seed):
    """A random translation by up to `pixels` in each direction, uncovered pixels zero."""
    import tensorflow as tf

    padded = tf.pad(image, [[pixels, pixels], [pixels, pixels], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed)


def _augment_cifar(image, seed):
    """Random crop with 4-pixel zero padding, then random horizontal flip (stateless)."""
    import tensorflow as tf

    return tf.image.stateless_random_flip_left_right(
        _shift(image, 4, seed), tf.random.experimental.stateless_fold_in(seed, 1))


def train_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int,
                  start_step: int = 0, augment: bool = False,
                  shift: int = 0) -> "tf.data.Dataset":
    """An endless stream of shuffled batches, from global batch number `start_step`.

    Data epoch e's order is a stateless permutation seeded by (seed, e), and example
    i's augmentation (`augment`: CIFAR's crop and flip; `shift`: a translation by up to
    that many pixels, the digits' augmentation) in epoch e by (seed, e, i), so the stream
    is a fixed sequence of batches: a run resumed at optimizer step s gets exactly the
    batches s, s+1, ... an uninterrupted run would have seen, also when Keras'
    `steps_per_epoch` differs from a pass over the data. The last partial batch of each
    data epoch is dropped (`len(x) // batch_size` batches per data epoch).
    """
    import tensorflow as tf

    n = len(x)
    if n < batch_size:
        raise DataError(f"Training set has {n} examples, fewer than batch_size={batch_size}.")
    per_epoch = n // batch_size
    keep = per_epoch * batch_size
    start_epoch, skip = divmod(int(start_step), per_epoch)
    x_t, y_t = tf.constant(x), tf.constant(y)

    def epoch(e):
        perm = tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.cast(seed, tf.int64), e])))
        idx = tf.data.Dataset.from_tensor_slices(perm[:keep])
        return idx.map(lambda i: (e, i))

    def load(e, i):
        image = tf.gather(x_t, i)
        key = tf.stack([e * seeding.STRIDE + tf.cast(i, tf.int64), tf.cast(seed, tf.int64)])
        if augment:
            image = _augment_cifar(image, key)
        if shift:
            image = _shift(image, shift, tf.random.experimental.stateless_fold_in(key, 2))
        return image, tf.gather(y_t, i)

    ds = tf.data.Dataset.range(start_epoch, 1 << 30).flat_map(epoch)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).skip(skip).prefetch(tf.data.AUTOTUNE)
