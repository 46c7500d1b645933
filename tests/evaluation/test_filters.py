import os
import subprocess
import sys

import numpy as np

from msd_tf.evaluation import filters
from tests.conftest import REPO


def test_thresholding_count_on_hand_made_filters():
    k = np.zeros((5, 5, 1, 4), np.float32)
    k[2, 2, 0, 0] = 1.0  # a single non-zero weight: thresholding
    k[:, :, 0, 1] = np.random.default_rng(0).normal(size=(5, 5))  # dense: not
    k[0, 0, 0, 2], k[4, 4, 0, 2] = 1.0, 0.2  # second largest 0.2 < 0.25: thresholding
    k[0, 0, 0, 3], k[4, 4, 0, 3] = 1.0, 0.3  # 0.3 >= 0.25: not
    np.testing.assert_array_equal(filters.thresholding_filters(k), [1, 0, 1, 0])


def test_plot_filters_script_on_an_exported_mnist_cnn(tmp_path):
    from msd_tf.export import export_saved_model
    from msd_tf.models import mnist_cnn

    model = mnist_cnn()
    kernel = model.layers[0].kernel.numpy()
    kernel[:, :, :, :3] = 0
    kernel[2, 2, 0, :3] = 0.5  # three thresholding filters planted
    model.layers[0].kernel.assign(kernel)
    path = export_saved_model(model, str(tmp_path / "run" / "saved_model"))
    np.testing.assert_array_equal(filters.first_conv_kernel(path), kernel)
    res = subprocess.run([sys.executable, "-m", "msd_tf.plot_filters", f"--out={tmp_path}/f",
                          path], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert res.returncode == 0, res.stderr[-2000:]
    want = int(filters.thresholding_filters(kernel).sum())
    assert want >= 3 and f"run: {want}/32 thresholding filters" in res.stdout
    assert (tmp_path / "f" / "run.png").exists()
