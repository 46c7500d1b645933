"""Square attack: score-based random search, no gradients, for the l_inf, l_2 and l_1
balls.

References:
  Andriushchenko, Croce, Flammarion, Hein, "Square Attack: a query-efficient black-box
  adversarial attack via random search", ECCV 2020, arXiv:1912.00049 (l_inf, l_2; the
  square-size schedule, the stripe and "eta" initializations and updates below).

What is computed (per example, one `tf.while_loop`, forward passes only):
  - loss: the margin z_y - max_{j != y} z_j, minimized; an example is done (and frozen)
    once it is misclassified (margin <= 0);
  - a candidate changes one random s x s window (all channels) of the best
    perturbation so far and is kept if it lowers the margin; the window side
    s = round(sqrt(p * H * W)) follows Square's schedule p = p_init / 2^k, halving
    after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 queries, whatever the
    budget (as AutoAttack runs it: `resc_schedule=False`);
  - l_inf: start from vertical stripes of +-eps; a candidate sets its window to +-eps
    (one random sign per channel), clipped to the box;
  - l_2: start from a grid of "eta" squares (concentric rectangles of mass 1/(k+1)^2,
    upper half positive, lower half negative) with random signs; a candidate puts a
    new signed eta square, plus the window's old direction, into window 1 with the
    mass of windows 1 and 2 and the unused budget, empties window 2, rescales the
    whole perturbation to l_2 norm eps and clips to the box (Square-l_2).
  - l_1 (AutoAttack's standard version for L1): the l_2 update with l_1 masses (window 1
    gets the l_1 mass of windows 1 and 2 plus the unused budget, times the channels),
    then the exact projection onto the l_1 ball (radius eps (1 - 1e-6)) and the box;
    the start is the unnormalized eta grid so projected.
For the l_1 ball the suite's stronger gradient-free attack is Sparse-RS (`sparse_rs.py`):
this window search reached 61% robust accuracy on a small MNIST CNN after 2000
queries where Sparse-RS reached 29% and l_1-APGD 33%.
Being gradient-free, it is unaffected by gradient masking (zero, random or obfuscated
gradients), which gradient attacks cannot detect by themselves.
"""

import numpy as np
import tensorflow as tf

from msd_tf import balls, projections, shapes
from msd_tf.attacks import base, compiled
from msd_tf.attacks.losses import margin
from msd_tf.seeding import INIT_STREAM, fold
from msd_tf.threats import QUERIES, ThreatModel

_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # of every 10,000 queries
P_INIT = 0.8  # Square's initial window fraction (AutoAttack's default)


def _eta(s: int) -> np.ndarray:
    """Square-l_2's s x s pattern: concentric rectangles of mass 1/(k+1)^2 around the
    centre of each half; upper half positive, lower half negative; unit l_2 norm."""

    def rectangles(rows, cols):
        out = np.zeros((rows, cols))
        if rows == 0:
            return out
        rc, cc = rows // 2, cols // 2  # centre (AutoAttack's x_c - 1, y_c - 1)
        levels = max(rows // 2 + 1, cols // 2 + 1)
        i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        ring = np.maximum(np.abs(i - rc), np.abs(j - cc))
        weights = 1.0 / (np.arange(levels) + 1.0) ** 2
        tail = np.cumsum(weights[::-1])[::-1]  # tail[d] = sum_{k >= d} 1/(k+1)^2
        out = np.where(ring < levels, tail[np.minimum(ring, levels - 1)], 0.0)
        return out / np.sqrt((out ** 2).sum())

    pattern = np.concatenate([rectangles(s // 2, s), -rectangles(s - s // 2, s)])
    return pattern / np.sqrt((pattern ** 2).sum())


def _patterns(size: int) -> np.ndarray:
    """`[size + 1, 2, size, size]`: `_eta(s)` and its transpose, zero-padded, for every s."""
    out = np.zeros((size + 1, 2, size, size), np.float32)
    for s in range(1, size + 1):
        p = _eta(s)
        out[s, 0, :s, :s] = p
        out[s, 1, :s, :s] = p.T
    return out


def schedule_fraction(i, n_queries: int, initial: float, *, rescale: bool = True) -> tf.Tensor:
    """Square's schedule at query `i`: `initial / 2^j`, j = how many of the thresholds
    10, 50, 200, ..., 8000 lie below i; with `rescale` the thresholds are of 10,000
    queries rescaled to `n_queries` (Sparse-RS), without it they are query counts
    (AutoAttack's Square, `resc_schedule=False`)."""
    if not rescale:
        it = tf.cast(i, tf.int32)
    else:
        it = tf.cast(tf.math.floor(tf.cast(i, tf.float32) / n_queries * 10000.0), tf.int32)
    halvings = tf.reduce_sum(tf.cast(it > tf.constant(_HALVINGS), tf.int32))
    return initial / tf.pow(2.0, tf.cast(halvings, tf.float32))


def _side(i, n_queries: int, p_init: float, hw: int, smallest: int, largest: int,
          odd: bool):
    """Window side at iteration `i`: round(sqrt(p * H * W)) on Square's p schedule."""
    p = schedule_fraction(i, n_queries, p_init, rescale=False)
    s = tf.maximum(tf.cast(tf.round(tf.sqrt(p * hw)), tf.int32), smallest)
    if odd:
        s = s + 1 - s % 2
    return tf.minimum(s, largest)


def _windows(seed, batch, s, height: int, width: int, patterns=None):
    """Per example a random s x s window: `(mask [B, H, W, 1], pattern [B, H, W, 1])`
    (the pattern, randomly transposed, placed in the window; None without `patterns`)."""
    vh = tf.random.stateless_uniform([batch], fold(seed, 1), 0, height - s + 1, tf.int32)
    vw = tf.random.stateless_uniform([batch], fold(seed, 2), 0, width - s + 1, tf.int32)
    hh = tf.range(height)[None, :, None] - vh[:, None, None]
    ww = tf.range(width)[None, None, :] - vw[:, None, None]
    inside = (hh >= 0) & (hh < s) & (ww >= 0) & (ww < s)
    mask = tf.cast(inside, tf.float32)[..., None]
    if patterns is None:
        return mask, None
    size = patterns.shape[-1]
    t = tf.random.stateless_uniform([batch], fold(seed, 3), 0, 2, tf.int32)
    shape = tf.shape(inside)
    idx = tf.stack([tf.fill(shape, s), tf.broadcast_to(t[:, None, None], shape),
                    tf.broadcast_to(tf.clip_by_value(hh, 0, size - 1), shape),
                    tf.broadcast_to(tf.clip_by_value(ww, 0, size - 1), shape)], axis=-1)
    pattern = tf.where(inside, tf.gather_nd(patterns, idx), 0.0)[..., None]
    return mask, pattern


def _signs(seed, shape) -> tf.Tensor:
    """Random +-1 (float32) of `shape`."""
    return 2.0 * tf.cast(tf.random.stateless_uniform(shape, seed) < 0.5, tf.float32) - 1.0


def _sum_hw(t):
    return tf.reduce_sum(t, axis=[1, 2], keepdims=True)


def _per_example(t, norm):
    return shapes.expand_to_rank(balls.per_example_norm(t, norm), t)


def _grid_init(x, seed, patterns: np.ndarray):
    """Square's l_2 / l_1 start: eta squares (each of unit l_2 norm) of side H // 5 on a
    centred grid, each randomly transposed and signed per example and channel."""
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    batch = tf.shape(x)[0]
    s = max(height // 5, 1)
    start = (height - 5 * s) // 2
    delta = tf.zeros_like(x)
    k = 0
    for vh in range(start, start + s * (height // s), s):
        for vw in range(start, start + s * (width // s), s):
            if vh + s > height or vw + s > width:
                continue
            tiles = np.zeros((2, height, width), np.float32)
            tiles[:, vh:vh + s, vw:vw + s] = patterns[s, :, :s, :s]
            coin = tf.random.stateless_uniform([], fold(seed, 200 + k)) < 0.5
            tile = tf.where(coin, tiles[0], tiles[1])
            sign = _signs(fold(seed, 100 + k), tf.stack([batch, 1, 1, channels]))
            delta += tile[None, :, :, None] * sign
            k += 1
    return delta


class _Moves:
    """Square's moves in one ball: `start(run_seed)`, a run's first perturbation, and
    `candidate(i, delta, it_seed)`, query i's change of the best perturbation so far.
    One subclass per norm (`MOVES`); every move stays in the ball and the box."""

    def __init__(self, x: tf.Tensor, eps, n_queries: int, p_init: float):
        self.x, self.eps, self.n_queries, self.p_init = x, eps, n_queries, p_init
        self.height, self.width, self.channels = (int(x.shape[1]), int(x.shape[2]),
                                                  int(x.shape[3]))
        self.hw, self.batch = float(self.height * self.width), tf.shape(x)[0]


class _LinfMoves(_Moves):
    """Vertical stripes of +-eps; a window set to +-eps (a random sign per channel)."""

    def start(self, run_seed):
        stripes = _signs(run_seed, tf.stack([self.batch, 1, self.width, self.channels]))
        return projections.project_box(self.x, self.eps * stripes)

    def candidate(self, i, delta, it_seed):
        s = _side(i, self.n_queries, self.p_init, self.hw, 1, min(self.height, self.width),
                  odd=False)
        m1, _ = _windows(it_seed, self.batch, s, self.height, self.width)
        sign = _signs(fold(it_seed, 4), tf.stack([self.batch, 1, 1, self.channels]))
        return projections.project_box(self.x, tf.where(m1 > 0, self.eps * sign, delta))


class _EtaMoves(_Moves):
    """l_2 and l_1: the eta grid start; a candidate puts a new signed eta square, plus
    window 1's old direction, into window 1 with the mass (`mass`) of windows 1 and 2 and
    the unused budget, and empties window 2. A subclass gives the per-channel window
    norm `window_norm`, `mass`, and `onto_ball` (the start's and the candidate's last
    step into the ball and the box)."""

    def __init__(self, x, eps, n_queries, p_init):
        super().__init__(x, eps, n_queries, p_init)
        self.patterns_np = _patterns(max(self.height, self.width))
        self.patterns = tf.constant(self.patterns_np)

    def start(self, run_seed):
        return self.onto_ball(_grid_init(self.x, run_seed, self.patterns_np))

    def candidate(self, i, delta, it_seed):
        s = _side(i, self.n_queries, self.p_init, self.hw, 3, min(self.height, self.width),
                  odd=True)
        m1, eta = _windows(it_seed, self.batch, s, self.height, self.width, self.patterns)
        m2, _ = _windows(fold(it_seed, 5), self.batch, s, self.height, self.width)
        sign = _signs(fold(it_seed, 6), tf.stack([self.batch, 1, 1, self.channels]))
        old = delta * m1
        new = eta * sign + old / (self.window_norm(old) + 1e-12)
        new = new / (self.window_norm(new) + 1e-12) * self.mass(delta, tf.maximum(m1, m2))
        return self.onto_ball(tf.where(m1 > 0, new, tf.where(m2 > 0, 0.0, delta)))


class _L2Moves(_EtaMoves):
    """Square-l_2: the whole perturbation rescaled to l_2 norm eps, then clipped."""

    def window_norm(self, t):
        return tf.sqrt(_sum_hw(t ** 2))

    def mass(self, delta, both):
        room = tf.nn.relu(self.eps ** 2 - _per_example(delta, "l2") ** 2) / self.channels
        return tf.sqrt(room + _per_example(delta * both, "l2") ** 2)

    def onto_ball(self, delta):
        return projections.project_box(
            self.x, delta / tf.maximum(_per_example(delta, "l2"), 1e-12) * self.eps)


class _L1Moves(_EtaMoves):
    """AutoAttack's Square for l_1: l_1 masses (times the channels), then the exact
    projection onto the l_1 ball of radius eps (1 - 1e-6) and the box; the start is the
    unnormalized eta grid so projected."""

    def window_norm(self, t):
        return _sum_hw(tf.abs(t))

    def mass(self, delta, both):
        room = tf.nn.relu(self.eps - _per_example(delta, "l1")) / self.channels
        return (room + _sum_hw(tf.abs(delta * both))) * self.channels

    def onto_ball(self, delta):
        return projections.project_l1_box(self.x, delta, self.eps * (1.0 - 1e-6))


MOVES = {"linf": _LinfMoves, "l2": _L2Moves, "l1": _L1Moves}


def square_delta(model, x: tf.Tensor, y: tf.Tensor, threat: ThreatModel, seed: tf.Tensor, *,
                 n_queries: int = QUERIES, p_init: float = P_INIT,
                 training: bool = False) -> base.AttackOutput:
    """Graph-level Square attack: `threat.restarts` runs of `n_queries` forward passes.

    Args:
      model: images in [0, 1] -> logits (only forward passes are used).
      x: `[B, H, W, C]` images in [0, 1]; y: `[B]` labels.
      threat: an l_inf, l_2 or l_1 ball (`alpha` and `steps` are not used).
      seed: `[2]` int64 stateless seed.
      n_queries: forward passes per run (the first is the start).
      p_init: initial fraction of pixels in a window (AutoAttack: 0.8).

    Returns:
      `base.AttackOutput`; `loss` is the margin at the returned delta (<= 0: fooled).
    """
    if x.shape.rank != 4 or None in x.shape[1:]:
        raise ValueError(f"Square needs [B, H, W, C] images with a static shape. "
                         f"Received shape {x.shape}")
    if n_queries < 1:
        raise ValueError(f"Argument `n_queries` must be >= 1. Received: {n_queries}")
    if threat.norm not in MOVES:
        raise ValueError(f"Square attacks the l_inf, l_2 or l_1 ball. Received "
                         f"norm={threat.norm!r}")
    moves = MOVES[threat.norm](x, threat.eps, n_queries, p_init)

    def score(delta):
        return margin(base.logits_of(model, x + delta, training), y)

    def one_run(r):
        run_seed = fold(seed, r)
        delta0 = moves.start(fold(run_seed, INIT_STREAM))
        margin0 = score(delta0)

        def body(i, delta, best):
            new = moves.candidate(i, delta, fold(run_seed, i))
            new_margin = score(new)
            take = (new_margin < best) & (best > 0)
            return (i + 1, tf.where(base.broadcast_mask(take, x), new, delta),
                    tf.where(take, new_margin, best))

        _, delta, _ = tf.while_loop(
            lambda i, d, best: (i < n_queries) & tf.reduce_any(best > 0), body,
            (tf.constant(1), delta0, margin0))
        return delta

    def neg_margin(logits, yy):  # best_of_runs keeps the higher loss
        return -margin(logits, yy)

    delta, loss = base.best_of_runs(one_run, threat.restarts, x, y, model, training, neg_margin)
    return base.AttackOutput(delta=delta, loss=-loss, counts=base.one_norm_counts(x))


def square(model, x, y, threat: ThreatModel, *, n_queries: int = QUERIES, p_init: float = P_INIT,
           seed=0, training: bool = False, jit_compile: bool = False) -> tf.Tensor:
    """Square attack (no gradients); returns adversarial images in the ball and the box.

    Compiled once per model, settings and input shape; deterministic for `seed`.

    Example:
      >>> x_adv = square(model, x, y, threats.preset("mnist", "linf"), n_queries=5000)
    """
    return compiled.run(model, x, y, square_delta, threat, seed=seed,
                        jit_compile=jit_compile, n_queries=n_queries, p_init=p_init,
                        training=training)

