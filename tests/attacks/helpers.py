"""Small models with known optimal perturbations, shared by the attack tests."""

import numpy as np
import tensorflow as tf


def linear_problem(n=784, batch=4, seed=0):
    """x = 0.5 everywhere (well inside the box), a fixed direction w.

    The model's logits are [0, w.x - 1000]: never fooled, so PGD keeps moving, and
    `linear_loss` = w.x has gradient exactly w. The maximiser of w.delta over the
    ball is known in closed form.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n,)).astype(np.float32)
    x = np.full((batch, n), 0.5, np.float32)
    y = np.zeros((batch,), np.int32)
    w_t = tf.constant(w)

    def model(inp):
        score = tf.reduce_sum(tf.reshape(inp, [tf.shape(inp)[0], -1]) * w_t, axis=1)
        return tf.stack([tf.zeros_like(score), score - 1000.0], axis=1)

    return model, x, y, w


def linear_loss(logits, y):
    del y
    return logits[:, 1]


def small_cnn(seed=0, classes=10):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 5, strides=2, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(classes),
    ])


def digits(n=16, seed=0):
    """Random 'images' in [0, 1] with many pixels at exactly 0 (like MNIST) and labels."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 28, 28, 1)).astype(np.float32)
    x[x < 0.6] = 0.0
    return x, rng.integers(0, 10, size=n).astype(np.int32)


def norms_of(x_adv, x):
    d = np.asarray(x_adv - x).reshape(len(x), -1)
    return {"linf": np.abs(d).max(1) if d.size else np.zeros(0),
            "l2": np.linalg.norm(d, axis=1), "l1": np.abs(d).sum(1)}


def fixture_cnn(seed=0, classes=10):
    """The paper's MNIST CNN at a quarter of its width: conv 5x5x16 (same) - ReLU -
    maxpool 2 - conv 5x5x32 (same) - ReLU - maxpool 2 - dense 128 - ReLU - dense
    (215,370 weights): the model of tests/data/autoattack_l1.npz."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(classes),
    ])


AUTOATTACK_FIXTURE = __import__("pathlib").Path(__file__).parent.parent / "data" / \
    "autoattack_l1.npz"


def load_autoattack_fixture():
    """tests/data/autoattack_l1.npz: `(model, x, data)`, the fixture CNN with its stored
    float16 weights, the digits in [0, 1] and every stored array."""
    with np.load(AUTOATTACK_FIXTURE) as f:
        data = {k: f[k] for k in f.files}
    model = fixture_cnn(seed=0)
    layers = sorted({int(k[1:].split("_")[0]) for k in data if k.startswith("w")})
    model.set_weights([data[f"w{i}_{part}"].astype(np.float32) for i in layers
                       for part in ("kernel", "bias")])
    return model, data["x"].astype(np.float32) / 255.0, data


def l1_box_reference(v, x, eps):
    """Projection onto the l1 ball and the box by float64 bisection on the threshold."""
    v, x = np.asarray(v, np.float64).ravel(), np.asarray(x, np.float64).ravel()
    cap = np.maximum(np.where(v >= 0, 1 - x, x), 0)

    def at(lam):
        return np.sign(v) * np.minimum(np.maximum(np.abs(v) - lam, 0), cap)

    if np.abs(at(0.0)).sum() <= eps:
        return at(0.0)
    lo, hi = 0.0, np.abs(v).max()
    for _ in range(400):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.abs(at(mid)).sum() > eps else (lo, mid)
    return at(hi)
