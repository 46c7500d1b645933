"""Checkpoint recovery: the newest checkpoint that restores, found from the files."""

import os

import numpy as np
import pytest
import tensorflow as tf

from msd_tf import checkpoints


def _state(value):
    return tf.Variable(np.full(4, value, np.float32)), tf.Variable(0, dtype=tf.int64)


def _three_checkpoints(folder):
    """ckpt-1..3 holding weights 1, 2, 3 (keep=0: no rotation)."""
    w, epoch = _state(0.0)
    writer = checkpoints.CheckpointWriter(tf.train.Checkpoint(w=w, epoch=epoch), str(folder),
                                          keep=0, log=lambda m: None)
    for e in (1, 2, 3):
        w.assign(np.full(4, float(e), np.float32))
        epoch.assign(e)
        writer.save(e)


def _restore(folder, logs=None):
    w, epoch = _state(-1.0)
    found = checkpoints.restore_newest(tf.train.Checkpoint(w=w, epoch=epoch), str(folder),
                                       log=(logs.append if logs is not None else print))
    return found, w.numpy(), int(epoch.numpy())


def _corrupt(path):
    path.write_bytes(b"not a checkpoint")


@pytest.mark.parametrize("damage", ["none", "newest_data", "newest_index", "index_file",
                                    "index_file_deleted", "newest_data_and_index_file"])
def test_newest_restorable_checkpoint_is_used(tmp_path, damage):
    _three_checkpoints(tmp_path)
    newest_data = next(tmp_path.glob("ckpt-3.data-*"))
    if "newest_data" in damage:
        _corrupt(newest_data)
    if damage == "newest_index":
        _corrupt(tmp_path / "ckpt-3.index")
    if damage in ("index_file", "newest_data_and_index_file"):
        (tmp_path / "checkpoint").write_text("model_checkpoint_path: \"ckpt-1\"\ngarbage{{")
    if damage == "index_file_deleted":
        (tmp_path / "checkpoint").unlink()
    logs = []
    found, w, epoch = _restore(tmp_path, logs)
    want = 2 if damage.startswith("newest_") else 3
    assert found[0] == want and epoch == want
    np.testing.assert_array_equal(w, np.full(4, float(want)))
    if want == 2:
        # The unusable checkpoint is reported and moved aside, never deleted.
        assert any("ckpt-3" in m and "cannot be restored" in m for m in logs)
        assert any("Recovered from" in m and "ckpt-2" in m for m in logs)
        moved = list((tmp_path / checkpoints.CORRUPT_DIR).rglob("ckpt-3.*"))
        assert len(moved) == 2 and not list(tmp_path.glob("ckpt-3.*"))


def test_no_checkpoint_restores_gives_an_error_and_touches_nothing(tmp_path):
    _three_checkpoints(tmp_path)
    for p in tmp_path.glob("ckpt-*.data-*"):
        _corrupt(p)
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    with pytest.raises(checkpoints.RestoreError, match=r"none of the 3 checkpoint.*mv .*\.bad"):
        _restore(tmp_path)
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before


def test_empty_folder_restores_nothing(tmp_path):
    assert _restore(tmp_path / "missing")[0] is None


def test_save_never_overwrites_and_rotation_keeps_the_newest(tmp_path):
    w, epoch = _state(5.0)
    logs = []
    writer = checkpoints.CheckpointWriter(tf.train.Checkpoint(w=w, epoch=epoch), str(tmp_path),
                                          keep=2, log=logs.append)
    (tmp_path / "ckpt-1.index").write_bytes(b"a leftover")
    writer.save(1)
    leftovers = list((tmp_path / checkpoints.CORRUPT_DIR).rglob("ckpt-1.index"))
    assert len(leftovers) == 1 and leftovers[0].read_bytes() == b"a leftover"
    for e in (2, 3):
        writer.save(e)
    assert [n for n, _ in checkpoints.list_checkpoints(str(tmp_path))] == [3, 2]
    # The index file names the newest, for tf.train.latest_checkpoint.
    assert tf.train.latest_checkpoint(str(tmp_path)) == os.path.join(str(tmp_path), "ckpt-3")
    with pytest.raises(ValueError, match="keep"):
        checkpoints.CheckpointWriter(tf.train.Checkpoint(w=w), str(tmp_path), keep=-1)


@pytest.mark.parametrize("content, start, expected", [
    ("", 2, ""),  # killed after the file was created, before Keras wrote the header
    ("epoch,loss\n", 2, "epoch,loss\n"),
    ("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n3,0.6\n", 2, "epoch,loss\n0,0.9\n1,0.8\n"),
    ("epoch,loss\n0,0.9\n1,0.8\n", 2, "epoch,loss\n0,0.9\n1,0.8\n"),
    ("epoch,loss\n0,0.9\n\n1,0.8\n", 0, "epoch,loss\n"),
])
def test_resume_keeps_only_the_history_of_epochs_the_checkpoint_reached(
        tmp_path, content, start, expected):
    from msd_tf import experiment
    from msd_tf.config import TrainConfig

    (tmp_path / "history.csv").write_text(content)
    experiment.write_run_files(TrainConfig(output_dir=str(tmp_path)), "0" * 64, start)
    assert (tmp_path / "history.csv").read_text().replace("\r\n", "\n") == expected
