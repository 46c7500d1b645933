"""Seeds and random draws of the attacks: stateless, so an attack is a deterministic
function of its seed (and a resumed run draws the same numbers). The draws per norm
belong to its `Ball` (`msd_tf.balls`); the seed helpers to `msd_tf.rng`."""

import tensorflow as tf

from msd_tf import balls, projections
from msd_tf.balls.l1 import draw_k
from msd_tf.rng import as_seed, fold
from msd_tf.seeding import INIT_STREAM, K_STREAM
from msd_tf.threats import ThreatModel

__all__ = ["INIT_STREAM", "K_STREAM", "as_seed", "draw_k", "fold", "random_in_ball"]


def random_in_ball(x: tf.Tensor, threat: ThreatModel, seed: tf.Tensor) -> tf.Tensor:
    """A point drawn uniformly from the threat's ball (`Ball.random_start`: l_inf
    uniform coordinates; l_2 a Gaussian direction, l_1 a Laplace one, at radius
    eps * U^(1/n)), then clipped to the box. Clipping only shrinks coordinates, so the
    result stays in the ball."""
    return projections.project_box(x, balls.get(threat.norm).random_start(x, threat, seed))
