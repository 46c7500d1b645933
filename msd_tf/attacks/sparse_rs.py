"""Sparse-RS: score-based random search over sparse perturbations (no gradients), used as
the gradient-free attack of the l_1 threat model.

References:
  Croce, Andriushchenko, Singh, Flammarion, Hein, "Sparse-RS: a versatile framework for
  query-efficient sparse black-box adversarial attacks", AAAI 2022, arXiv:2006.12834.

Why it serves the l_1 ball: changing k pixels to vertices of the pixel box ({0, 1} per
channel) costs at most k * C in l_1 (each channel moves at most 1), so with
k = floor(eps / C) every candidate lies in the l_1 ball of radius eps and in the box;
and the strongest l_1 perturbations of image classifiers are sparse and saturating.

What is computed (per example, one `tf.while_loop`, forward passes only):
  - state: k distinct pixels (all channels of a pixel together), each set to a random
    vertex; start: k random pixels;
  - candidate: round(alpha * k) (at least 1) of the k pixels, chosen at random, move to
    pixels outside the set, with new random vertices; alpha = alpha_init / 2^j halves
    on Square's schedule (at 10, 50, 200, ... 8000 of every 10,000 queries);
  - kept if the margin z_y - max_{j != y} z_j decreases; an example is done once it is
    misclassified.
"""

import numpy as np
import tensorflow as tf

from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import margin
from msd_tf.attacks.square import schedule_fraction
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import QUERIES, ThreatModel

ALPHA_INIT = 0.3  # initial fraction of the k pixels a candidate moves


def _vertices(seed, shape) -> tf.Tensor:
    return tf.cast(tf.random.stateless_uniform(shape, seed) < 0.5, tf.float32)


def sparse_rs_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor,
                    *, n_queries: int = QUERIES, alpha_init: float = ALPHA_INIT,
                    training: bool = False) -> base.AttackOutput:
    """Graph-level Sparse-RS in the l_1 ball of `threat` (`threat.restarts` runs).

    Args:
      x: `[B, H, W, C]` images in [0, 1]; y: `[B]` labels.
      threat: an l_1 `ThreatModel`; k = floor(eps / C) pixels change (at least 1 is
        required: eps >= C).
      n_queries: forward passes per run (the first is the start).
      alpha_init: initial fraction of the k pixels a candidate moves.

    Returns:
      `base.AttackOutput`; `loss` is the margin at the returned delta (<= 0: fooled).
    """
    if threat.norm != "l1":
        raise ValueError(f"Sparse-RS serves the l1 ball. Received norm={threat.norm!r}")
    if x.shape.rank != 4 or None in x.shape[1:]:
        raise ValueError(f"Sparse-RS needs [B, H, W, C] images with a static shape. "
                         f"Received shape {x.shape}")
    height, width, channels = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    pixels = height * width
    k = min(int(np.floor(threat.eps / channels + 1e-9)), pixels)
    if k < 1:
        raise ValueError(f"Sparse-RS needs eps >= channels ({channels}) to move one pixel. "
                         f"Received eps={threat.eps}")
    batch = tf.shape(x)[0]
    flat_x = tf.reshape(x, [batch, pixels, channels])

    def image(idx, colors):
        """x with pixels `idx` `[B, k]` set to `colors` `[B, k, C]`."""
        rows = tf.repeat(tf.range(batch), k)
        where = tf.stack([rows, tf.reshape(idx, [-1])], axis=1)
        mask = tf.scatter_nd(where, tf.ones([batch * k]), [batch, pixels])[..., None]
        values = tf.scatter_nd(where, tf.reshape(colors, [-1, channels]),
                               [batch, pixels, channels])
        return tf.reshape(flat_x * (1.0 - mask) + values, tf.shape(x))

    def score(idx, colors):
        return margin(base.logits_of(model, image(idx, colors), training), y)

    def one_run(r):
        run_seed = fold(seed, r)
        s0 = fold(run_seed, INIT_STREAM)
        idx0 = tf.math.top_k(tf.random.stateless_uniform([batch, pixels], s0), k).indices
        colors0 = _vertices(fold(s0, 1), [batch, k, channels])
        margin0 = score(idx0, colors0)

        def body(i, idx, colors, best):
            it_seed = fold(run_seed, i)
            n_move = tf.maximum(tf.cast(tf.round(
                schedule_fraction(i, n_queries, alpha_init) * k), tf.int32), 1)
            # Which of the k slots move: a random order, the first n_move.
            order = tf.argsort(tf.random.stateless_uniform([batch, k], fold(it_seed, 1)))
            moving = tf.argsort(order) < n_move  # [B, k]
            # Where they go: random pixels outside the current set.
            taken = tf.reduce_sum(tf.one_hot(idx, pixels), axis=1) > 0
            scores = tf.where(taken, -1.0, tf.random.stateless_uniform(
                [batch, pixels], fold(it_seed, 2)))
            fresh = tf.math.top_k(scores, k).indices  # k distinct free pixels
            new_idx = tf.where(moving, fresh, idx)
            new_colors = tf.where(moving[..., None],
                                  _vertices(fold(it_seed, 3), [batch, k, channels]),
                                  colors)
            new_margin = score(new_idx, new_colors)
            take = (new_margin < best) & (best > 0)
            return (i + 1, tf.where(take[:, None], new_idx, idx),
                    tf.where(take[:, None, None], new_colors, colors),
                    tf.where(take, new_margin, best))

        _, idx, colors, _ = tf.while_loop(
            lambda i, a, b, best: (i < n_queries) & tf.reduce_any(best > 0), body,
            (tf.constant(1), idx0, colors0, margin0))
        return image(idx, colors) - x

    def neg_margin(logits, yy):  # best_of_runs keeps the higher loss
        return -margin(logits, yy)

    delta, loss = base.best_of_runs(one_run, threat.restarts, x, y, model, training, neg_margin)
    return base.AttackOutput(delta=delta, loss=-loss, counts=base.one_norm_counts(x))


def sparse_rs(model, x, y, threat: ThreatModel, *, n_queries: int = QUERIES,
              alpha_init: float = ALPHA_INIT, seed=0, training: bool = False,
              jit_compile: bool = False) -> tf.Tensor:
    """Sparse-RS in the l_1 ball (no gradients); returns adversarial images in the ball
    and the box. Compiled once per model, settings and input shape; deterministic for
    `seed`."""
    return compiled.run(model, x, y, sparse_rs_delta, threat, seed=seed,
                        jit_compile=jit_compile, n_queries=n_queries, alpha_init=alpha_init,
                        training=training)
