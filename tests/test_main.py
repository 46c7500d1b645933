"""End to end through `python -m msd_tf.main`: smoke run, export, bad input, kill/resume.

The run's messages (resuming, recovery, fine-tuning) are absl log lines, on stderr."""

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
    # 2 steps of batch 50, MSD with 3 iterations (tests/test_training.py: (4k + 2) B
    # forward and (k + 1) B backward example-passes a step).
    assert summary["compute"] == {"forward_examples": 1400, "backward_examples": 400,
                                  "passes": 1800, "examples_per_epoch": 100}
    from msd_tf import machine

    # The machine the training time was measured on (tests/test_machine.py: the oneDNN
    # default itself, with the variable unset, 0 and 1).
    facts = summary["machine"]
    assert facts["tensorflow"] == tf.__version__ and facts["cpus"] >= 1
    assert facts["onednn"] == machine.onednn_enabled()  # the child ran as this process
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
    # Started again, the finished run neither trains nor exports again (a new export's
    # graph bytes differ, which would invalidate evaluation caches keyed by content).
    from msd_tf import fingerprints

    before = fingerprints.of_saved_model(str(out / "saved_model"))
    res = _main([*SMOKE, f"--output_dir={out}"])
    assert res.returncode == 0 and "is up to date" in res.stderr, res.stderr[-1500:]
    assert fingerprints.of_saved_model(str(out / "saved_model")) == before


def _bad_data_dir(tmp_path, mnist_dir, how):
    """A copy of the MNIST folder whose images file is truncated or not gzip at all."""
    import shutil

    folder = tmp_path / f"data_{how}"
    shutil.copytree(mnist_dir, folder)
    images = folder / "t10k-images-idx3-ubyte.gz"
    blob = images.read_bytes()
    images.write_bytes(blob[: len(blob) // 2] if how == "truncated" else b"plain text" * 100)
    return folder


# (extra flags, text the single error line must contain); every case exits with 2,
# prints no traceback and writes nothing.
BAD_INPUTS = {
    "eps_zero": (["--l2_eps=0"], "l2_eps"),
    "k1_above_k2": (["--l1_k1=30"], "l1_k1"),
    "unknown_adversary": (["--adversary=fgsm"], "adversary"),
    "unknown_flag": (["--no_such_flag=1"], "no_such_flag"),
    "stray_argument": (["extra"], "unexpected arguments"),
    "missing_flagfile": (["--flagfile=flags/nope.cfg"], "flagfile flags/nope.cfg not found"),
    "missing_data_dir": (["--data_dir=/no/such/folder"], "no such folder"),
    "batch_above_split": (["--train_split=test[990:1000]"],
                          "--batch_size=50 is larger than the training split"),
    "train_overlaps_eval": (["--train_split=test[:10]"], "share 10 examples"),
    "lr_epochs_not_increasing": (["--lr_epochs=0,6,3"], "`lr_epochs` must increase"),
    "bad_split": (["--train_split=validation"], "is not of the form train, test"),
    "adversary_without_its_norm": (["--adversary=l2", "--norms=linf"],
                                   "needs an l2 ThreatModel"),
    "missing_init_from": (["--init_from=/no/such/model"], "--init_from /no/such/model"),
    "truncated_data_file": ("truncated", "truncated or corrupt"),
    "not_gzip_data_file": ("not_gzip", "truncated or corrupt"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_exit_2_and_writes_nothing(tmp_path, mnist_dir, case):
    args, message = BAD_INPUTS[case]
    if isinstance(args, str):
        args = [f"--data_dir={_bad_data_dir(tmp_path, mnist_dir, args)}"]
    out = tmp_path / "o"
    res = _main([*SMOKE, f"--output_dir={out}", *args])
    assert res.returncode == 2, res.stderr[-1500:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr[-1500:]
    assert ".. See" not in errors[0], errors[0]  # one full stop before the advice
    assert "Traceback" not in res.stderr and "FATAL" not in res.stderr
    assert not out.exists() or not any(out.iterdir()), sorted(out.iterdir())


def test_flags_recipes_and_flag_errors_need_no_tensorflow():
    """The training flags, a recipe read into a TrainConfig (an adversary's own option
    included) and the packages they name load no TensorFlow or Keras (6 s per command
    on a 2-core Zen 3), so a flag error is reported at once and a table's recipes parse
    without it."""
    code = ("import sys; from msd_tf import flags; "
            "c = flags.parse_config(['--flagfile=flags/mnist/msd.cfg', '--adversary=ramp', "
            "'--ramp_lambda=2', '--model=wide_resnet', '--strategy=mirrored']); "
            "assert c.adversary_options['lam'] == 2.0 and c.model == 'wide_resnet', c; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stdout + res.stderr[-1500:]


def test_a_failed_start_does_not_lock_the_corrected_command(tmp_path, mnist_dir):
    out = tmp_path / "o"
    assert _main([*SMOKE, f"--output_dir={out}", "--data_dir=/nonexistent"]).returncode == 2
    assert _main([*SMOKE, f"--output_dir={out}", "--lr_epochs=0,6,3"]).returncode == 2
    # A config.json without any checkpoint (a run killed before its first epoch ended)
    # does not make the folder an experiment either.
    out.mkdir(exist_ok=True)
    (out / "config.json").write_text(json.dumps({"adversary": "max", "linf_eps": 0.1}))
    res = _main([*SMOKE, f"--output_dir={out}"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["adversary"] == "msd"


def test_output_dir_of_another_experiment_is_refused(tmp_path, mnist_dir):
    out = tmp_path / "o"
    assert _main([*SMOKE, f"--output_dir={out}"]).returncode == 0
    res = _main([*SMOKE, f"--output_dir={out}", "--linf_eps=0.1"])
    assert res.returncode == 2 and "different experiment" in res.stderr
    # The same data by an absolute path is the same experiment: it resumes.
    res = _main([*SMOKE, f"--output_dir={out}", f"--data_dir={mnist_dir.resolve()}",
                 "--epochs=2"])
    assert res.returncode == 0 and "from epoch 1" in res.stderr, res.stderr[-1500:]
    # Every checkpoint corrupt: one error line that says what to do; nothing touched.
    ckpt = out / "checkpoints"
    for f in ckpt.glob("ckpt-*.data*"):
        f.write_bytes(b"garbage")
    before = sorted((p.name, p.read_bytes()) for p in ckpt.iterdir())
    res = _main([*SMOKE, f"--output_dir={out}", "--epochs=3"])
    assert res.returncode == 2 and "none of the 2 checkpoint(s)" in res.stderr, \
        res.stderr[-1500:]
    assert "mv " in res.stderr and "Traceback" not in res.stderr
    assert sorted((p.name, p.read_bytes()) for p in ckpt.iterdir()) == before


def test_recovery_from_a_corrupt_newest_checkpoint_and_a_lost_index(tmp_path, mnist_dir):
    out = tmp_path / "o"
    assert _main([*SMOKE, f"--output_dir={out}", "--epochs=2"]).returncode == 0
    ckpt = out / "checkpoints"
    # Index file lost: the checkpoints are found from their files (before: epoch 1
    # again, over the saved checkpoints, exit code 0).
    (ckpt / "checkpoint").unlink()
    res = _main([*SMOKE, f"--output_dir={out}", "--epochs=3"])
    assert res.returncode == 0 and "from epoch 2" in res.stderr, res.stderr[-1500:]
    # Newest checkpoint corrupt and the index garbage: recover from the one before,
    # say so, keep the corrupt files aside.
    newest = next(ckpt.glob("ckpt-3.data*"))
    newest.write_bytes(b"garbage")
    (ckpt / "checkpoint").write_text("garbage")
    res = _main([*SMOKE, f"--output_dir={out}", "--epochs=4"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Recovered from" in res.stderr and "ckpt-2" in res.stderr
    assert "from epoch 2" in res.stderr
    moved = list((ckpt / "corrupt").rglob("ckpt-3.data*"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"garbage"
    assert [p.name for p in sorted(ckpt.glob("ckpt-*.index"))] == ["ckpt-3.index",
                                                                   "ckpt-4.index"]
    history = (out / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in history[1:]] == ["0", "1", "2", "3"]


def test_killed_run_resumes_to_the_same_weights(tmp_path, mnist_dir):
    args = [*SMOKE, "--epochs=4", "--steps_per_epoch=3", "--msd_steps=6"]
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
    assert "from epoch " in res.stderr, res.stderr[-2000:]
    resumed_from = int(res.stderr.split("from epoch ")[1].split()[0])
    assert 1 <= resumed_from < 4, "the kill must interrupt the run"
    a = _checkpoint_values(str(straight / "checkpoints"))
    b = _checkpoint_values(str(killed / "checkpoints"))
    assert a.keys() == b.keys() and any("optimizer" in k for k in a)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # bit-exact


def test_fine_tune_with_eat_starts_from_the_given_model(tmp_path, mnist_dir):
    base = tmp_path / "base"
    assert _main([*SMOKE, f"--output_dir={base}", "--adversary=none"]).returncode == 0
    out = tmp_path / "ft"
    res = _main([*SMOKE, f"--output_dir={out}", "--adversary=eat",
                 f"--init_from={base / 'saved_model'}", "--lr_values=0,0,0"])
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Fine-tuning from" in res.stderr
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
