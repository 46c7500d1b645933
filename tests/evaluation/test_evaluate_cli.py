"""`python -m msd_tf.evaluate` end to end on tiny exported SavedModels."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO

ATTACKS = "pgd_linf,fgsm,mim,pgd_l2,ddn,deepfool,pgd_l1,salt_pepper"


def _evaluate(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "msd_tf.evaluate", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def models(tmp_path_factory, request):
    from msd_tf import data
    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn
    from tests.conftest import SHARED_MNIST

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    root = tmp_path_factory.mktemp("models")
    x, y = data.load_arrays("mnist", "test[100:1100]", str(SHARED_MNIST))
    paths = []
    for i, epochs in enumerate((1, 3)):
        model = small_cnn(seed=i)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=100, epochs=epochs, verbose=0)
        paths.append(export_saved_model(model, str(root / f"m{i}" / "saved_model")))
    bad = small_cnn(seed=0, classes=5)
    paths.append(export_saved_model(bad, str(root / "five" / "saved_model")))
    return paths


def test_end_to_end_outputs_and_resume(models, tmp_path):
    out = tmp_path / "eval"
    args = [f"--models={models[0]},{models[1]}", "--dataset=mnist",
            f"--data_dir={REPO.parent / 'shared' / 'data' / 'mnist'}", "--eval_split=test[:100]",
            "--num_examples=24", "--eval_batch_size=12", "--restarts=1", "--budget=fast",
            f"--attacks={ATTACKS}", f"--output_dir={out}"]
    res = _evaluate(args)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in ("results.md", "results.json", "results.csv", "curves.png",
                 "per_example_m0.npz", "per_example_m1.npz", "examples_m0.png",
                 "examples_m1.png"):
        assert (out / name).exists(), name
    md = (out / "results.md").read_text()
    assert "| attack (threat model, radius) | m0 | m1 |" in md
    assert "All l_inf attacks (eps=0.3)" in md and "All attacks" in md
    per = np.load(out / "per_example_m0.npz")
    assert per["clean"].shape == (24,) and per["ddn/norm"].shape == (24,)

    # Delete one attack's results: only that attack is recomputed.
    cache = out / "cache" / "m0"
    ddn = next(p for p in cache.iterdir() if p.name.startswith("ddn-"))
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("batch_*.npz") if ddn not in p.parents}
    for p in ddn.iterdir():
        p.unlink()
    res = _evaluate(args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert sorted(p.name for p in ddn.iterdir()) == ["batch_0.npz", "batch_1.npz"]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert (out / "results.md").read_text() == md  # same numbers after resuming


@pytest.mark.parametrize("case, message", [
    ("not_saved_model", "neither a SavedModel"),
    ("five_classes", "expected logits [N, 10]"),
    ("unknown_attack", "Unknown attack"),
    ("bad_radius", "eval_l2_eps"),
])
def test_bad_input(models, tmp_path, case, message):
    args = {"not_saved_model": [f"--models={tmp_path}"],
            "five_classes": [f"--models={models[2]}"],
            "unknown_attack": [f"--models={models[0]}", "--attacks=pgd_linf,jsma"],
            "bad_radius": [f"--models={models[0]}", "--eval_l2_eps=-1"]}[case]
    res = _evaluate([*args, "--dataset=mnist", "--num_examples=4", "--budget=fast",
                     f"--data_dir={REPO.parent / 'shared' / 'data' / 'mnist'}",
                     f"--output_dir={tmp_path / 'o'}"])
    assert res.returncode != 0 and message in res.stderr, res.stderr[-2000:]
