"""Content fingerprints (SHA-256, hex): what a cache key or an experiment check compares.

A fingerprint depends only on content, never on a name or a path: the same data read
from an absolute or a relative path, or a copied model folder, give the same value.
"""

import glob
import hashlib
import json
import os
import subprocess

import numpy as np

_CHUNK = 1 << 20
_SOURCE_SUFFIXES = (".py", ".cfg", ".sh")  # untracked files that make a checkout dirty


def of_arrays(*arrays: np.ndarray) -> str:
    """dtype, shape and bytes of every array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def of_json(value) -> str:
    """A JSON-serializable value (dict keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def of_weights(arrays) -> str:
    """The values of a model's weights (dtype, shape and bytes of each), in no particular
    order: a SavedModel and a checkpoint of the same weights, or two saves that list the
    variables in another order, agree; what differs in the files alone does not count."""
    return of_json(sorted(of_arrays(np.asarray(a)) for a in arrays))


def of_files(paths, root: str | None = None) -> str:
    """The bytes of `paths`, each tagged with its name relative to `root` (or its
    base name), so that renaming a file inside a model changes the fingerprint but
    moving the whole folder does not."""
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: os.path.relpath(p, root) if root else p):
        name = os.path.relpath(path, root) if root else os.path.basename(path)
        h.update(f"{name};{os.path.getsize(path)};".encode())
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def of_saved_model(path: str) -> str:
    """The graph (`saved_model.pb`) and every variable file of a SavedModel folder."""
    files = [os.path.join(path, "saved_model.pb")]
    files += [p for p in glob.glob(os.path.join(glob.escape(path), "variables", "*"))
              if os.path.isfile(p)]
    return of_files(files, root=path)


def of_checkpoint(prefix: str) -> str:
    """The `.index` and `.data-*` files of one checkpoint."""
    files = glob.glob(glob.escape(prefix) + ".index") + glob.glob(glob.escape(prefix)
                                                                  + ".data-*")
    return of_files(files)


def of_code() -> str:
    """Every source file of the installed `msd_tf` package (the code version)."""
    root = os.path.dirname(os.path.abspath(__file__))
    files = glob.glob(os.path.join(glob.escape(root), "**", "*.py"), recursive=True)
    return of_files(files, root=root)


def git_commit(root: str = "") -> str:
    """The git commit of the msd_tf checkout (or of `root`), with "+dirty" when tracked
    files differ from it or an untracked source file or flagfile is present (the figures
    then come from code no commit holds; untracked outputs, e.g. a `runs/` folder, do not
    count, nor do changes under `docs/`, where the tables write the results they measured),
    or "unknown" (an installed package, no git)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):  # installed: not our checkout
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        status = subprocess.run(["git", "-C", root, "status", "--porcelain",
                                 "--untracked-files=all"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = head.stdout.strip()
    if head.returncode != 0 or not commit:
        return "unknown"
    changed = ([line for line in status.stdout.splitlines()
                if not line[3:].lstrip('"').startswith("docs/")
                and (not line.startswith("??")
                     or line.rstrip().rstrip('"').endswith(_SOURCE_SUFFIXES))]  # quoted: spaces
               if status.returncode == 0 else [])
    return commit + ("+dirty" if changed else "")
