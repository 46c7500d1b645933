"""scripts/device_check.py in its CPU mode (the code path of the GPU check, at toy
sizes), and the one `error:` line for ops that have no deterministic kernel."""

import json
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

from msd_tf import cli

REPO = Path(__file__).resolve().parents[1]


def test_cpu_mode_runs_every_check_and_measures_both_steps(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.device_check", "--device=cpu",
         f"--out={out}", "--budget_s=75"], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert [c["ok"] for c in results["checks"]] == [True, True, True], results["checks"]
    assert results["mode"] == "cpu" and results["timings"], results["notes"]
    for row in results["timings"]:
        # An MSD step runs at least one attack iteration on top of the plain step.
        assert row["msd_step_ms"] > row["plain_step_ms"] > 0
        assert row["msd_epoch_s"] > 0
    assert results["pipeline"]["ratio"] > 0
    assert "| setup |" in (out / "results.md").read_text()


def test_a_missing_deterministic_kernel_names_the_op_and_the_escape():
    # The message TF raises under op determinism for a GPU kernel without one.
    error = tf.errors.UnimplementedError(
        None, None, "A deterministic GPU implementation of SparseSoftmaxXentWithLogits is "
        "not currently available.\n\t [[{{node foo}}]]")
    message = cli.nondeterministic_op(error)
    assert "SparseSoftmaxXentWithLogits" in message and "--nodeterministic" in message
    assert "\n" not in message
    assert cli.nondeterministic_op(tf.errors.UnimplementedError(None, None, "no XLA")) is None
