"""msd_tf: adversarial training and evaluation against the union of l_inf, l_2 and l_1 balls.

Importing the package touches no device, seed or flag. On x86 it sets
`TF_ENABLE_ONEDNN_OPTS=1` unless the variable is set already (TensorFlow's default
leaves oneDNN off on AVX2-only CPUs; see `msd_tf.machine`).
"""

from msd_tf import machine as _machine

_machine.enable_onednn_by_default()

__version__ = "0.1.0"
