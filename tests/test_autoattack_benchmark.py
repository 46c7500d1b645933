"""`reproduce --table=autoattack` (msd_tf.benchmarks.autoattack) at the smoke scale, with a
stand-in for the PyTorch AutoAttack (torch is no dependency): it claims to break the
first correctly classified digit of every norm with the unperturbed image. The committed
comparison must count against our committed per-digit flags exactly as a hand count does,
refuse AutoAttack's claim when our model re-checks it, be reused while current, and be run
again (the model trained again first, if gone) once it is stale."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from tests.conftest import REPO

STAND_IN = '''#!{python}
import os, sys
import numpy as np
_, _, inputs, outputs, *rest = sys.argv
with open({calls!r}, "a") as f:
    f.write("call\\n")
norms = next(a.split("=", 1)[1] for a in rest if a.startswith("--norms=")).split(",")
with np.load(inputs) as f:
    x, y, logits = f["x"], f["y"], f["logits"]
clean = logits.argmax(1) == y
out = {{"clean": clean, "max_logit_diff": np.float32(0.0)}}
for norm in norms:
    robust = clean.copy()
    robust[np.flatnonzero(clean)[0]] = False  # claimed, with x itself: not a real break
    out[f"attacks_{{norm}}"] = np.array(["apgd-ce"])
    out[f"robust_{{norm}}_apgd-ce"] = robust
    out[f"seconds_{{norm}}_apgd-ce"] = np.float64(1.5)
    out[f"x_adv_{{norm}}"] = x
np.savez(outputs, **out)
'''


def _reproduce(results, work, stand_in):
    return subprocess.run(
        [sys.executable, "-m", "msd_tf.reproduce", "--table=autoattack", "--scale=smoke",
         f"--results_dir={results}", f"--work_dir={work}", "--data_dir=../shared/data/mnist",
         f"--torch_python={stand_in}"], cwd=REPO, capture_output=True, text=True,
        timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def _bits(s: str) -> np.ndarray:
    return np.array([c == "1" for c in s])


def test_comparison_counts_reuse_and_staleness(tmp_path, mnist_dir, capsys):
    calls = tmp_path / "calls"
    stand_in = tmp_path / "torch_python"
    stand_in.write_text(STAND_IN.format(python=sys.executable, calls=str(calls)))
    stand_in.chmod(0o755)
    results, work = tmp_path / "r", tmp_path / "w"
    res = _reproduce(results, work, stand_in)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    ours = json.loads((results / "smoke" / "msd.json").read_text())
    c = json.loads((results / "smoke" / "msd.autoattack.json").read_text())
    clean = _bits(ours["robust"]["clean"])
    first = np.flatnonzero(clean)[0]
    aa_union = clean.copy()
    aa_union[first] = False
    for norm in ("linf", "l2", "l1"):
        mine, aa = _bits(ours["robust"][norm]), clean.copy()
        aa[first] = False
        row = c["norms"][norm]
        assert row["ours"] == ours["accuracy"][norm]
        assert row["autoattack"] == round(100 * aa.mean(), 1)
        assert row["robust_ours_broken_aa"] == int((mine & ~aa).sum())
        assert row["robust_aa_broken_ours"] == int((aa & ~mine).sum())
        assert row["unverified_breaks"] == 1  # our model still classifies x right
        assert _bits(c["robust_autoattack"][norm]).tolist() == aa.tolist()
    mine = _bits(ours["robust"]["union"])
    assert c["union"]["robust_aa_broken_ours"] == int((aa_union & ~mine).sum())
    assert c["union"]["autoattack"] == round(100 * aa_union.mean(), 1)
    assert c["seconds"]["autoattack"] == 4.5 and c["num_examples"] == 8
    table = (results / "autoattack_smoke.md").read_text()
    assert "| union |" in table and calls.read_text().count("call") == 1
    assert "not on disk" not in res.stdout  # the model just trained was compared

    # Current: reused from the committed files alone, nothing trained, evaluated or run.
    shutil.rmtree(work)
    assert _produce(results, work, stand_in, capsys)["msd"] == c
    out = capsys.readouterr().out
    assert "committed comparison" in out and "+ python" not in out
    assert calls.read_text().count("call") == 1

    # Stale (the committed evaluation is not the one compared): AutoAttack must run again,
    # on the model trained and evaluated again, as its run folder is gone (a dry run here:
    # the commands it prints).
    flipped = "".join("0" if ch == "1" else "1" for ch in ours["robust"]["clean"])
    edited = dict(ours, robust=dict(ours["robust"], clean=flipped))
    (results / "smoke" / "msd.json").write_text(json.dumps(edited))
    _produce(results, work, stand_in, capsys, dry_run=True)
    out = capsys.readouterr().out
    assert "is stale" in out and "training and evaluating it again" in out
    for step in ("msd_tf.main", "msd_tf.evaluate", "scripts.compare_autoattack"):
        assert f"+ python -m {step} " in out
    assert calls.read_text().count("call") == 1 and not list(work.rglob("saved_model"))


def _produce(results, work, stand_in, capsys, dry_run=False):
    """The command's library call, in this process."""
    from msd_tf.benchmarks import autoattack, tables, units

    bench = tables.BENCHMARKS[("autoattack", "smoke")]
    ctx = units.Context("smoke", bench.evaluation, "../shared/data/mnist",
                        str(results / "smoke"), str(work / "smoke"), None, dry_run,
                        tag=bench.tag)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return autoattack.produce(bench, ctx, None, (f"--torch_python={stand_in}",))
    finally:
        os.chdir(cwd)
