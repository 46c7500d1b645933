"""msd_tf: adversarial training and evaluation against the union of l_inf, l_2 and l_1 balls.

Importing the package touches no device, seed or flag.
"""

__version__ = "0.1.0"
