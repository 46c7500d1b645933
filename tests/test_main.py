"""End to end through `python -m msd_tf.main`: smoke run, export, bad input, kill/resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO

SMOKE = ["--flagfile=flags/smoke.cfg"]


def _main(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "msd_tf.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def _checkpoint_values(folder):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(folder))
    values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if "save_counter" not in k}
    return {k: v for k, v in values.items() if not isinstance(v, bytes)}  # object graph


def test_smoke_run_exports_a_model_matching_the_checkpoint(tmp_path, mnist_dir):
    out = tmp_path / "smoke"
    res = _main([*SMOKE, f"--output_dir={out}"])
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("config.json", "flags.txt", "history.csv", "summary.json", "logs",
                 "saved_model/saved_model.pb", "saved_model/msd_tf.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 1 and 0 <= summary["eval_clean_acc"] <= 1
    assert "--adversary=msd" in (out / "flags.txt").read_text()

    from msd_tf import data
    from msd_tf.export import load_logits_fn
    from msd_tf.models import mnist_cnn

    logits_fn, meta = load_logits_fn(str(out / "saved_model"))
    assert meta["adversary"] == "msd"
    model = mnist_cnn()
    tf.train.Checkpoint(model=model).restore(
        tf.train.latest_checkpoint(str(out / "checkpoints"))).expect_partial()
    x, _ = data.load_arrays("mnist", "test[:20]", str(mnist_dir))
    np.testing.assert_allclose(logits_fn(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    # Clean accuracy in the summary is that of the exported model.
    xe, ye = data.load_arrays("mnist", "test[:100]", str(mnist_dir))
    acc = np.mean(logits_fn(xe).numpy().argmax(1) == ye)
    assert acc == pytest.approx(summary["eval_clean_acc"], abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--l2_eps=0"], "l2_eps"),
    (["--l1_k1=30"], "l1_k1"),
    (["--adversary=fgsm"], "adversary"),
    (["--data_dir=/no/such/folder"], "no such folder"),
    (["--train_split=test[:10]"], "fewer than batch_size"),
])
def test_bad_input_gives_one_clear_error_and_nonzero_exit(tmp_path, args, message):
    res = _main([*SMOKE, f"--output_dir={tmp_path / 'o'}", *args])
    assert res.returncode != 0
    assert message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr


def test_output_dir_of_another_experiment_is_refused(tmp_path, mnist_dir):
    out = tmp_path / "o"
    assert _main([*SMOKE, f"--output_dir={out}"]).returncode == 0
    res = _main([*SMOKE, f"--output_dir={out}", "--linf_eps=0.1"])
    assert res.returncode != 0 and "different experiment" in res.stderr
    ckpt = out / "checkpoints"
    for f in ckpt.glob("ckpt-1.data*"):
        f.write_bytes(b"garbage")
    res = _main([*SMOKE, f"--output_dir={out}", "--epochs=2"])
    assert res.returncode != 0 and "cannot be restored" in res.stderr, res.stderr[-1500:]


def test_killed_run_resumes_to_the_same_weights(tmp_path, mnist_dir):
    args = [*SMOKE, "--epochs=4", "--steps_per_epoch=3", "--msd_steps=15"]
    straight = tmp_path / "straight"
    assert _main([*args, f"--output_dir={straight}"]).returncode == 0

    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "msd_tf.main", *args,
                             f"--output_dir={killed}"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # Wait until a checkpoint is committed (the manager's state file names it).
    while not tf.train.latest_checkpoint(str(killed / "checkpoints")):
        assert proc.poll() is None and time.time() < deadline, "run ended before epoch 1"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = _main([*args, f"--output_dir={killed}"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "from epoch " in res.stdout, res.stdout[-2000:]
    resumed_from = int(res.stdout.split("from epoch ")[1].split()[0])
    assert 1 <= resumed_from < 4, "the kill must interrupt the run"
    a = _checkpoint_values(str(straight / "checkpoints"))
    b = _checkpoint_values(str(killed / "checkpoints"))
    assert a.keys() == b.keys() and any("optimizer" in k for k in a)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=k)


def test_fine_tune_with_eat_starts_from_the_given_model(tmp_path, mnist_dir):
    base = tmp_path / "base"
    assert _main([*SMOKE, f"--output_dir={base}", "--adversary=none"]).returncode == 0
    out = tmp_path / "ft"
    res = _main([*SMOKE, f"--output_dir={out}", "--adversary=eat",
                 f"--init_from={base / 'saved_model'}", "--lr_values=0,0,0"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Fine-tuning from" in res.stdout
    # With a zero learning rate the fine-tuned model is exactly the initial one.
    from msd_tf import data
    from msd_tf.export import load_logits_fn

    x, _ = data.load_arrays("mnist", "test[:16]", str(mnist_dir))
    before = load_logits_fn(str(base / "saved_model"))[0](x).numpy()
    after = load_logits_fn(str(out / "saved_model"))[0](x).numpy()
    np.testing.assert_array_equal(after, before)
    fresh = _main([*SMOKE, f"--output_dir={tmp_path / 'fresh'}", "--adversary=eat",
                   "--lr_values=0,0,0", "--seed=5"])
    assert fresh.returncode == 0
    other = load_logits_fn(str(tmp_path / "fresh" / "saved_model"))[0](x).numpy()
    assert np.abs(other - before).max() > 1e-3  # a fresh init differs: the test can fail
    bad = _main([*SMOKE, f"--output_dir={tmp_path / 'bad'}", f"--init_from={tmp_path}"])
    assert bad.returncode != 0 and "--init_from" in bad.stderr
