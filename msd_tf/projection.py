"""RAMP's gradient projection of one weight tensor (Jiang and Singh, NeurIPS 2024): over
one epoch from theta_old, adversarial training moved it by g_a = theta_adv - theta_old and
natural training by g_n = theta_nat - theta_old; the new value keeps (1 - beta) of the
adversarial move and adds beta times the natural move scaled by their cosine where that
is positive:

    theta_new = theta_old + (1 - beta) g_a + beta * max(cos(g_a, g_n), 0) * g_n

with the cosine over the whole tensor (flattened; the product of the two norms floored
at 1e-8). Scalars (step counters) take theta_adv. Pure TensorFlow.
"""

import tensorflow as tf


def fuse(old, adv, nat, beta: float) -> tf.Tensor:
    """The projected value of one tensor (see the module doc)."""
    old, adv, nat = (tf.convert_to_tensor(t) for t in (old, adv, nat))
    if old.shape.rank == 0:
        return adv
    g_a, g_n = adv - old, nat - old
    denom = tf.maximum(tf.norm(tf.reshape(g_a, [-1])) * tf.norm(tf.reshape(g_n, [-1])), 1e-8)
    cos = tf.reduce_sum(g_a * g_n) / denom
    return old + (1.0 - beta) * g_a + beta * tf.maximum(cos, 0.0) * g_n
