"""Two MultiWorkerMirroredStrategy workers on localhost train the smoke config together."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

from tests.conftest import REPO


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_workers_on_localhost(tmp_path, mnist_dir):
    out = tmp_path / "mw"
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "msd_tf.main", "--flagfile=flags/smoke.cfg",
             "--strategy=multi_worker", "--nodeterministic", f"--output_dir={out}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    # The chief (worker 0) wrote the run; worker 1 wrote its own copy aside.
    assert (out / "saved_model" / "saved_model.pb").exists()
    # The same callbacks as fit(): the CSV history and the TensorBoard logs.
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and "adv_acc" in history[0] and len(history) == 2
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert (out / ".worker_1" / "checkpoints").exists()
    # Both replicas hold the same weights after the synchronized steps.
    chief = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(out / "checkpoints")))
    other = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(str(out / ".worker_1" / "checkpoints")))
    keys = [k for k in chief.get_variable_to_shape_map() if "trainable_variables" in k]
    assert keys
    for k in keys:
        np.testing.assert_allclose(chief.get_tensor(k), other.get_tensor(k), rtol=1e-6)
