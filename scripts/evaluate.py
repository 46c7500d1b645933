"""Thin wrapper: `python scripts/evaluate.py --models=... [flags]` = `python -m msd_tf.evaluate`."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from msd_tf.evaluate import run  # noqa: E402

if __name__ == "__main__":
    run()
