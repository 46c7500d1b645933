"""What every attack's graph shares: its output, the model call, the per-example loss
and its gradient, and keeping the best of several runs.

Graph-level functions (`*_delta`) are plain TensorFlow and run inside any
`tf.function` (the Keras `train_step` calls them); `compile.run` gives each its
public, compiled face. `ascend` is the loop of the iterative attacks that differ only
in their update (PGD, SLIDE, MIM). Seeds: `msd_tf.seeding`; random starts and one projected
steepest-ascent step of a threat model: `msd_tf.balls` (`random_in_ball`,
`projected_step`).
"""

import dataclasses
from typing import Callable

import keras
import tensorflow as tf

from msd_tf.seeding import INIT_STREAM, fold


@dataclasses.dataclass
class AttackOutput:
    """What a graph-level attack returns.

    Attributes:
      delta: `[B, ...]` perturbation, inside the ball and with `x + delta` in [0, 1].
      loss: `[B]` per-example loss at `x + delta`.
      counts: `[len(threats)]` float32, how often each threat model's candidate was
        chosen (MSD: over iterations and examples; MAX: over examples; a single-norm
        attack: the batch size, for its one threat model).
      choice: union attacks only (MSD, MAX): `[B]` int32 index of the threat model the
        example's delta came from; None for a single-norm attack.
    """

    delta: tf.Tensor
    loss: tf.Tensor
    counts: tf.Tensor
    choice: tf.Tensor | None = None


def one_norm_counts(x: tf.Tensor) -> tf.Tensor:
    """`AttackOutput.counts` of a single-norm attack on the batch `x`: `[1]`, the batch
    size (every example's delta came from the one threat model)."""
    return tf.ones([1], tf.float32) * tf.cast(tf.shape(x)[0], tf.float32)


def logits_of(model: Callable, x: tf.Tensor, training: bool) -> tf.Tensor:
    """Calls `model` on `x`; Keras layers (and callables that declare `takes_training`,
    e.g. `compute.CountedModel`) get `training=`, other callables just `x`."""
    if isinstance(model, keras.layers.Layer) or getattr(model, "takes_training", False):
        return model(x, training=training)
    return model(x)


def loss_and_grad(model, x, delta, y, *, training: bool, loss_fn):
    """Per-example loss, logits and d(sum of losses)/d(delta) at `x + delta`."""
    with tf.GradientTape() as tape:
        tape.watch(delta)
        logits = logits_of(model, x + delta, training)
        loss = loss_fn(logits, y)
    return loss, logits, tape.gradient(loss, delta)


def loss_and_grad_where(model, x, delta, y, live, *, training: bool, loss_for):
    """`loss_and_grad` on the examples where `live` only, gathered into a smaller batch:
    an attack skips the examples it has finished with (fooled) instead of computing
    them again. The other rows get zero loss, logits and gradient; the caller must
    ignore them. `loss_for(rows)` is the loss function of the gathered rows `rows`, so
    a loss with per-example arguments (target classes) can follow the gather.

    At least one row must be live (TF's fused ReluGrad rejects empty batches). The
    batch shape is dynamic: not for XLA (`jit_compile`), and the model must not depend
    on the batch composition (training=False: no batch statistics)."""
    batch = tf.shape(x)[0]
    rows = tf.where(live)[:, 0]

    def scatter(t):
        return tf.scatter_nd(rows[:, None], t, tf.concat([[tf.cast(batch, tf.int64)],
                                                         tf.shape(t, tf.int64)[1:]], 0))

    take = lambda t: tf.gather(t, rows)  # noqa: E731
    loss, logits, grad = loss_and_grad(model, take(x), take(delta), take(y), training=training,
                                       loss_fn=loss_for(rows))
    return scatter(tf.cast(loss, tf.float32)), scatter(logits), scatter(grad)


def loss_and_grad_on(model, x, delta, y, live, *, compact: bool, training: bool, loss_fn,
                     loss_for=None):
    """`loss_and_grad_where` on the `live` rows if `compact` (`loss_for` defaults to
    `loss_fn` for every row set), else `loss_and_grad` on the whole batch."""
    if compact:
        return loss_and_grad_where(model, x, delta, y, live, training=training,
                                   loss_for=loss_for or (lambda rows: loss_fn))
    return loss_and_grad(model, x, delta, y, training=training, loss_fn=loss_fn)


def any_in_group(flags: tf.Tensor, group: int) -> tf.Tensor:
    """`[R * B]` run-major flags -> `[R * B]`: whether any of the `group` = R rows of the
    same example is set (the identity for group 1)."""
    if group == 1:
        return flags
    return tf.tile(tf.reduce_any(tf.reshape(flags, [group, -1]), axis=0), [group])


def broadcast_mask(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """A `[B]` boolean mask broadcast to the shape of `like` (`[B, ...]`)."""
    shape = tf.concat([tf.shape(mask), tf.ones([like.shape.rank - 1], tf.int32)], 0)
    return tf.broadcast_to(tf.reshape(mask, shape), tf.shape(like))


def adversarial_images(x: tf.Tensor, delta: tf.Tensor) -> tf.Tensor:
    """`x + delta`, clipped to [0, 1] against float rounding (delta is box-feasible)."""
    return tf.clip_by_value(x + delta, 0.0, 1.0)


def better(loss_new, fooled_new, loss_old, fooled_old):
    """Restart rule: fooling beats not fooling; otherwise the higher loss wins."""
    return (fooled_new & ~fooled_old) | ((fooled_new == fooled_old) & (loss_new > loss_old))


def best_of_runs(one_run, restarts: int, x: tf.Tensor, y: tf.Tensor, model, training: bool,
                 loss_fn):
    """Runs `one_run(r) -> delta` for r < restarts in a `tf.while_loop` and keeps, per
    example, the better delta (`better`: fooling first, then the higher loss).

    Returns:
      `(delta, loss)` of the kept runs.
    """
    batch = tf.shape(x)[0]
    y_int = tf.cast(y, tf.int32)

    def restart(r, best_delta, best_loss, best_fooled):
        delta = one_run(r)
        logits = logits_of(model, x + delta, training)
        loss = loss_fn(logits, y)
        fooled = tf.argmax(logits, axis=1, output_type=tf.int32) != y_int
        take = better(loss, fooled, best_loss, best_fooled)
        return (r + 1, tf.where(broadcast_mask(take, x), delta, best_delta),
                tf.where(take, loss, best_loss), tf.where(take, fooled, best_fooled))

    init = (tf.constant(0), tf.zeros_like(x),
            tf.fill([batch], tf.constant(-float("inf"), tf.float32)), tf.zeros([batch], tf.bool))
    _, delta, loss, _ = tf.while_loop(lambda r, *_: r < restarts, restart, init)
    return delta, loss


def ascend(model, x: tf.Tensor, y: tf.Tensor, threat, seed: tf.Tensor, update, *, start,
           training: bool, loss_fn, stop_when_fooled: bool, compact: bool,
           state=()) -> AttackOutput:
    """`threat.restarts` runs of at most `threat.steps` gradient-ascent iterations, the
    best run kept per example (`best_of_runs`): the loop PGD, SLIDE and MIM share.

    A run r starts at `start(fold(fold(seed, r), INIT_STREAM))` if r > 0 or
    `threat.random_start`, else at 0. Each iteration t computes the loss gradient at
    `x + delta` and moves to `update(t, delta, grad, state, run_seed) -> (candidate,
    state)` (`state`: a nest of tensors the update carries, e.g. MIM's momentum). With
    `stop_when_fooled`, an example the model already misclassifies keeps its delta, and a
    run stops once every example is (frozen examples would not move); `compact` then
    computes only the examples still correctly classified (`loss_and_grad_on`).
    """
    batch = tf.shape(x)[0]
    y_int = tf.cast(y, tf.int32)

    def one_run(r):
        run_seed = fold(seed, r)
        delta0 = tf.where(tf.logical_or(r > 0, threat.random_start),
                          start(fold(run_seed, INIT_STREAM)), tf.zeros_like(x))

        def body(t, delta, carried, live):
            _, logits, grad = loss_and_grad_on(model, x, delta, y, live,
                                               compact=compact and stop_when_fooled,
                                               training=training, loss_fn=loss_fn)
            candidate, carried = update(t, delta, grad, carried, run_seed)
            if not stop_when_fooled:
                return t + 1, candidate, carried, live
            # Frozen examples are not computed again (compact): still fooled.
            correct = (tf.argmax(logits, axis=1, output_type=tf.int32) == y_int) & live
            return t + 1, tf.where(broadcast_mask(correct, x), candidate, delta), carried, correct

        _, delta, _, _ = tf.while_loop(
            lambda t, d, c, live: (t < threat.steps) & tf.reduce_any(live), body,
            (tf.constant(0), delta0, state, tf.ones([batch], tf.bool)))
        return delta

    delta, loss = best_of_runs(one_run, threat.restarts, x, y, model, training, loss_fn)
    return AttackOutput(delta=delta, loss=loss, counts=one_norm_counts(x))
