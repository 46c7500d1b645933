"""The git commit that figures are stamped with: "+dirty" when tracked files differ from it."""

import subprocess

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
