"""`python -m msd_tf.reproduce` end to end at a toy scale: two models, two training steps,
eight digits; the table must say what the evaluation measured."""

import json
import os
import subprocess
import sys

import pytest

from msd_tf import fingerprints, paper
from tests.conftest import REPO


def _reproduce(out, models, data_dir):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "msd_tf.reproduce", "--table=3",
                           "--scale=smoke", f"--models={models}", f"--data_dir={data_dir}",
                           f"--output_dir={out}"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_toy_reproduction_table_matches_the_evaluation(tmp_path, mnist_dir):
    out = tmp_path / "t3"
    res = _reproduce(out, "vanilla,msd", mnist_dir)
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    results = json.loads((out / "eval" / "results.json").read_text())
    table = json.loads((out / "table3.json").read_text())
    md = (out / "table3.md").read_text()
    assert table["n"] == results["provenance"]["num_examples"] == 8
    for m in ("vanilla", "msd"):
        s, row = results["models"][m], table["rows"][m]
        assert row["ours"]["clean"] == round(100 * s["clean"], 1)
        assert row["ours"]["all"] == round(100 * s["all"], 1)
        for n in ("linf", "l2", "l1"):
            assert row["ours"][n] == round(100 * s["norms"][n]["acc"], 1)
            assert row["ours_paper_attacks"][n] == round(100 * s["paper_only"][n], 1)
        assert row["paper"] == paper.TABLE_3.get(m)
    msd = table["rows"]["msd"]
    want = (f"| MSD | {msd['ours']['clean']:.1f} (98.3, {msd['ours']['clean'] - 98.3:+.1f}) "
            f"| {msd['ours']['linf']:.1f} (62.7, {msd['ours']['linf'] - 62.7:+.1f}) |")
    assert want in md
    assert "| Standard | " in md and "the slow attacks cw_l2 on the first 4" in md
    assert (out / "table3.png").stat().st_size > 0
    assert set(table["timings"]) == {"train/vanilla", "train/msd", "eval", "eval_slow"}

    # Started again: models reused as they are, nothing evaluated again.
    cache = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    models = {m: fingerprints.of_saved_model(str(out / m / "saved_model"))
              for m in ("vanilla", "msd")}
    res = _reproduce(out, "vanilla,msd", mnist_dir)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "is up to date" in (out / "logs" / "msd.log").read_text()
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} == cache
    assert {m: fingerprints.of_saved_model(str(out / m / "saved_model"))
            for m in ("vanilla", "msd")} == models
    assert json.loads((out / "table3.json").read_text())["rows"] == table["rows"]


@pytest.mark.parametrize("args, message", [
    (["--table=4", "--scale=small"], "--table=4 has no --scale=small"),
    (["--models=msd,foo"], "unknown --models ['foo']"),
    (["--data_dir=/no/such/dir"], "--data_dir /no/such/dir"),
])
def test_bad_input_gives_one_error_line(tmp_path, args, message):
    res = subprocess.run([sys.executable, "-m", "msd_tf.reproduce", *args,
                          f"--output_dir={tmp_path}"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and message in res.stderr, res.stderr[-1500:]
    assert "Traceback" not in res.stderr
