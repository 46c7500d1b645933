"""A training run's checkpoints: one `ckpt-<epoch>` per epoch, found from the files.

Rules (what a user can rely on):
  - Restore takes the newest checkpoint that actually restores, found by listing the
    `ckpt-<n>.index` files; the `checkpoint` index file is written for other tools
    (`tf.train.latest_checkpoint`) but never trusted. Every newer checkpoint that
    fails to restore is reported and moved into `corrupt/` (never deleted); if none
    restores, `RestoreError` says what to do and nothing is touched.
  - Save never writes over an existing checkpoint: leftover files with the same
    number are moved into `corrupt/` first.
  - Rotation, the one deletion: after a successful save, checkpoints older than the
    newest `keep` are removed (`keep=0` keeps all).
"""

import glob
import os
import re
import shutil
import time
from typing import Callable

import tensorflow as tf
from absl import logging

_NAME = re.compile(r"^ckpt-(\d+)\.index$")
CORRUPT_DIR = "corrupt"


class RestoreError(RuntimeError):
    """No checkpoint of the folder restores; the message says what to do."""


def list_checkpoints(folder: str) -> list[tuple[int, str]]:
    """`(number, prefix)` of every `ckpt-<n>` in `folder`, newest first."""
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.index")):
        m = _NAME.match(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path[:-len(".index")]))
    return sorted(found, reverse=True)


def _files_of(prefix: str) -> list[str]:
    return sorted(glob.glob(glob.escape(prefix) + ".*"))


def _move_aside(folder: str, prefix: str, log: Callable[[str], None], why: str) -> None:
    target = os.path.join(folder, CORRUPT_DIR, time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(target, exist_ok=True)
    for path in _files_of(prefix):
        shutil.move(path, os.path.join(target, os.path.basename(path)))
    log(f"warning: moved {os.path.basename(prefix)} ({why}) to {target}")


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}"


def restore_newest(checkpoint: tf.train.Checkpoint, folder: str, *, partial: bool = False,
                   log: Callable[[str], None] = logging.warning, move_failed: bool = True):
    """Restores the newest checkpoint of `folder` that restores.

    Args:
      checkpoint: the objects to restore into.
      folder: the checkpoints folder.
      partial: allow the checkpoint to hold more than `checkpoint` (e.g. restoring
        only the model of a training checkpoint); everything `checkpoint` holds must
        still be matched.
      log: where warnings go.
      move_failed: move newer checkpoints that fail to restore into `corrupt/`, so
        the next save does not collide with them (training); False leaves the folder
        as it is (evaluation).

    Returns:
      `(number, prefix)` of the restored checkpoint, or None if the folder holds none.

    Raises:
      RestoreError: checkpoints exist but none restores.
    """
    candidates = list_checkpoints(folder)
    failures = []
    for number, prefix in candidates:
        try:
            status = checkpoint.read(prefix)
            if partial:
                status.expect_partial()
            status.assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001 - any failure means "unusable"
            failures.append((prefix, _short(e)))
            continue
        for failed, why in failures:
            if move_failed:
                _move_aside(folder, failed, log, f"it cannot be restored: {why}")
            else:
                log(f"warning: skipped {failed}: it cannot be restored ({why})")
        if failures:
            log(f"Recovered from {prefix}, the newest checkpoint that restores.")
        return number, prefix
    if failures:
        newest, why = failures[0]
        raise RestoreError(
            f"none of the {len(failures)} checkpoint(s) in {folder} restores (newest: "
            f"{os.path.basename(newest)}: {why}). Nothing was changed. To train this run "
            f"again from epoch 1, move the folder aside (mv {folder} {folder}.bad); "
            "otherwise use a new --output_dir.")
    return None


class CheckpointWriter:
    """Saves `ckpt-<number>` files into `folder` under the rules of this module."""

    def __init__(self, checkpoint: tf.train.Checkpoint, folder: str, *, keep: int = 2,
                 log: Callable[[str], None] = logging.warning):
        if keep < 0:
            raise ValueError(f"Argument `keep` must be >= 0 (0: keep all). Received: {keep}")
        self.checkpoint, self.folder, self.keep, self.log = checkpoint, folder, keep, log

    def save(self, number: int) -> str:
        """Writes `ckpt-<number>`, updates the index file, then rotates; returns the prefix."""
        os.makedirs(self.folder, exist_ok=True)
        prefix = os.path.join(self.folder, f"ckpt-{int(number)}")
        if _files_of(prefix):
            _move_aside(self.folder, prefix, self.log, "a leftover with the number of a "
                                                       "new checkpoint")
        self.checkpoint.write(prefix)
        kept = list_checkpoints(self.folder)
        if self.keep:
            for old_number, old_prefix in kept[self.keep:]:
                if old_number < number:
                    for path in _files_of(old_prefix):
                        os.remove(path)
            kept = list_checkpoints(self.folder)
        self._write_index([p for _, p in reversed(kept)], prefix)
        return prefix

    def _write_index(self, prefixes: list[str], latest: str) -> None:
        """The `checkpoint` state file (relative names), written atomically."""
        lines = [f'model_checkpoint_path: "{os.path.basename(latest)}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in prefixes]
        path = os.path.join(self.folder, "checkpoint")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(path + ".tmp", path)
