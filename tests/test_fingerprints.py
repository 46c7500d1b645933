"""The git commit that figures are stamped with ("+dirty" when the code differs from it),
and the weights' fingerprint that the evaluation's seeds derive from."""

import subprocess

import numpy as np

from msd_tf import fingerprints


def _git(root, *args):
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_marks_uncommitted_changes(tmp_path):
    assert fingerprints.git_commit(str(tmp_path)) == "unknown"  # not a checkout
    _git(tmp_path, "init", "-q")
    (tmp_path / "recipe.cfg").write_text("--l1_eps=10\n")
    _git(tmp_path, "add", "recipe.cfg")
    _git(tmp_path, "commit", "-q", "-m", "recipe")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert fingerprints.git_commit(str(tmp_path)) == head
    (tmp_path / "runs").mkdir()  # untracked output does not make the checkout dirty
    (tmp_path / "runs" / "summary.json").write_text("{}")
    assert fingerprints.git_commit(str(tmp_path)) == head
    (tmp_path / "recipe.cfg").write_text("--l1_eps=14\n")  # an edited flagfile does
    assert fingerprints.git_commit(str(tmp_path)) == head + "+dirty"
    _git(tmp_path, "checkout", "-q", "recipe.cfg")
    assert fingerprints.git_commit(str(tmp_path)) == head
    (tmp_path / "docs" / "results").mkdir(parents=True)  # measured results, written by the
    (tmp_path / "docs" / "results" / "t.json").write_text("{}")  # tables: not code
    _git(tmp_path, "add", "docs")
    _git(tmp_path, "commit", "-q", "-m", "table")
    head = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "docs" / "results" / "t.json").write_text('{"union": 1}')
    (tmp_path / "docs" / "results" / "new.json").write_text("{}")
    assert fingerprints.git_commit(str(tmp_path)) == head
    (tmp_path / "new attack.py").write_text("x = 1\n")  # a source file no commit holds
    assert fingerprints.git_commit(str(tmp_path)) == head + "+dirty"  # (git quotes its name)


def test_weights_fingerprint_is_of_values_not_of_their_order():
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(5, 5, 1, 4)).astype(np.float32), np.zeros(4, np.float32),
         rng.normal(size=(4, 10)).astype(np.float32)]
    fp = fingerprints.of_weights(w)
    assert fingerprints.of_weights(w[::-1]) == fp
    assert fingerprints.of_weights([a.copy() for a in w]) == fp
    bumped = [w[0], w[1], w[2].copy()]
    bumped[2][3, 7] = np.nextafter(bumped[2][3, 7], np.float32(np.inf))  # one ulp
    assert fingerprints.of_weights(bumped) != fp
    assert fingerprints.of_weights([w[0], w[1], w[2].astype(np.float64)]) != fp  # dtype
    assert fingerprints.of_weights([w[0], w[1].reshape(2, 2), w[2]]) != fp  # shape
