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
    # A budget spent before the timings: every check, then the first timing only (the
    # code path of each measurement), the others named as skipped.
    out = tmp_path / "check"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.device_check", "--device=cpu",
         f"--out={out}", "--budget_s=1"], cwd=REPO, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert [c["ok"] for c in results["checks"]] == [True, True, True], results["checks"]
    assert results["mode"] == "cpu" and len(results["timings"]) == 1, results["notes"]
    assert results["timings"][0]["label"] == "MNIST CNN, float32, graph"
    assert len(results["notes"]) == 7 and all(n.startswith("skipped for time: ")
                                              for n in results["notes"])
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
