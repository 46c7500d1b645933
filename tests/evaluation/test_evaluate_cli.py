"""`python -m msd_tf.evaluate` end to end on tiny exported SavedModels: outputs, the
content-keyed cache, seeding, resume, and one error line for every bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.conftest import REPO, SHARED_MNIST

# Salt & Pepper stands for the foolbox attacks seeded per restart (Pointwise, 10x its
# time here, is checked in test_foolbox_compat).
ATTACKS = "pgd_linf,fgsm,mim,pgd_l2,ddn,deepfool,pgd_l1,salt_pepper"
# One worker runs this module under `pytest -n 2 --dist=loadgroup` (the README's command),
# so its fixtures (two trained models, one uninterrupted evaluation) run once; session
# scope keeps them for the worker's whole run even if it interleaves other modules' tests.
# (The 35-s set-up once ran twice because the group itself was ignored: see conftest.)
pytestmark = pytest.mark.xdist_group("evaluate_cli")


def _evaluate(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "msd_tf.evaluate", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600, **kwargs)


def _args(models, out, *extra):
    return [f"--models={','.join(map(str, models))}", "--dataset=mnist",
            f"--data_dir={SHARED_MNIST}", "--eval_split=test[:100]", "--num_examples=12",
            "--eval_batch_size=6", "--restarts=2", "--budget=fast", f"--attacks={ATTACKS}",
            f"--output_dir={out}", *extra]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    from msd_tf import data
    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn

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
    return paths


def _results(out):
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="session")
def straight(models, tmp_path_factory):
    """One uninterrupted evaluation, the reference of the rerun and the resume tests."""
    out = tmp_path_factory.mktemp("straight") / "eval"
    res = _evaluate(_args(models, out))
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_outputs_provenance_and_identical_reruns(models, straight, tmp_path):
    out, res = straight
    for name in ("results.md", "results.json", "results.csv", "curves.png",
                 "per_example_m0.npz", "per_example_m1.npz", "examples_m0.png",
                 "examples_m1.png"):
        assert (out / name).exists(), name
    md = (out / "results.md").read_text()
    assert "| attack (threat model, radius) | m0 | m1 |" in md
    assert "All l_inf attacks (eps=0.3)" in md and "All attacks" in md
    per = np.load(out / "per_example_m0.npz")
    assert per["clean"].shape == (12,) and per["ddn/norm"].shape == (12,)
    prov = _results(out)["provenance"]
    from msd_tf import fingerprints

    for name, path in zip(("m0", "m1"), models):
        assert prov["models"][name]["fingerprint"] == fingerprints.of_saved_model(path)
        assert prov["models"][name]["path"] == path
        # Every model evaluated is printed with its path and fingerprint.
        assert f"sha256 {prov['models'][name]['fingerprint']}" in res.stdout
    assert (prov["dataset"], prov["split"], prov["num_examples"]) == ("mnist", "test[:100]", 12)
    assert prov["data_dir"] == str(SHARED_MNIST.resolve()) and prov["restarts"] == [1, 2]
    assert set(prov["versions"]) >= {"tensorflow", "foolbox", "numpy", "msd_tf"}
    assert {"cpu", "isa", "onednn", "intra_op_threads"} <= set(prov["machine"])
    # An identical command in a fresh folder gives identical results.json (foolbox's
    # Salt & Pepper draws from global generators: seeded per restart).
    again = tmp_path / "again"
    assert _evaluate(_args(models, again)).returncode == 0
    assert (again / "results.json").read_text() == (out / "results.json").read_text()


def test_killed_and_resumed_evaluation_equals_the_uninterrupted_one(models, straight,
                                                                   tmp_path):
    killed = tmp_path / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "msd_tf.evaluate", *_args(models, killed)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(list((killed / "cache").rglob("batch_*.npz"))) < 5:
        assert proc.poll() is None and time.time() < deadline, "finished before the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((killed / "cache").rglob("batch_*.npz")))
    assert not (killed / "results.json").exists() and done < 2 * 8 * 2
    res = _evaluate(_args(models, killed))
    assert res.returncode == 0, res.stderr[-2000:]
    assert (killed / "results.json").read_text() == (straight[0] / "results.json").read_text()


def _in_process(model_path, out, *, split="test[:24]", data_dir=None, on_compute=None):
    from msd_tf.evaluation import pipeline

    specs = pipeline.build_suite("mnist", ["pgd_linf", "fgsm", "ddn"], restarts=1,
                                 suite_name="paper", budget="fast", eps={})
    from msd_tf.evaluation.records import EvalConfig

    config = EvalConfig("mnist", specs, data_dir=str(data_dir or SHARED_MNIST), split=split,
                        num_examples=24, output_dir=str(out), batch_size=12, verbose=False)
    return pipeline.evaluate([str(model_path)], config, on_compute=on_compute).summaries


def test_cache_is_keyed_by_content_not_by_names(models, tmp_path, monkeypatch):
    # Retrained into the same folder, evaluated into the same output folder: the
    # numbers are those of the new model (before: the old model's, 76% vs 41%).
    run = tmp_path / "run" / "saved_model"
    shutil.copytree(models[0], run)
    out = tmp_path / "eval"
    first = _in_process(run, out)
    shutil.rmtree(run)
    shutil.copytree(models[1], run)
    retrained = _in_process(run, out)
    fresh = _in_process(models[1], tmp_path / "fresh")
    assert first["run"]["attacks"] != fresh["m1"]["attacks"]  # stale reuse would show
    assert retrained["run"] == fresh["m1"]
    # Other data into the same output folder: recomputed, the numbers of that data.
    other = _in_process(run, out, split="test[50:74]")
    assert other["run"] == _in_process(models[1], tmp_path / "fresh2",
                                       split="test[50:74]")["m1"]
    assert other["run"] != retrained["run"]
    # The same data by a relative or an absolute path: nothing recomputed.
    computed = []
    monkeypatch.chdir(REPO)
    rel = os.path.relpath(SHARED_MNIST, REPO)
    again = _in_process(run, out, data_dir=rel, on_compute=lambda a, b: computed.append((a, b)))
    assert computed == [] and again == retrained


def test_strong_pruning_keeps_every_flag_of_the_unpruned_suite(models, tmp_path):
    # The strong suite's fixed-radius attacks (and with --nocurves its minimization
    # attacks) run only on what is still robust: the per-norm and union flags are those
    # of every attack on every example; without curves no curves.png; profile.json.
    import numpy as np

    from msd_tf.evaluation import checks, pipeline
    from msd_tf.evaluation.records import EvalConfig

    # Attacks without random draws (a subset would draw other numbers than the batch).
    names = ["pgd_linf", "fgsm", "pgd_l2", "ddn", "deepfool"]
    common = dict(dataset="mnist", data_dir=str(SHARED_MNIST), split="test[:24]",
                  num_examples=24, batch_size=12, verbose=False)
    full = pipeline.build_suite("mnist", names, restarts=1, suite_name="paper",
                                budget="fast", eps={})
    lean = pipeline.build_suite("mnist", names, restarts=1, suite_name="strong",
                                budget="fast", eps={}, curves=False)
    assert sum(s.only_robust for s in lean) == len(names)
    flags = {}
    for tag, specs, curves in (("full", full, True), ("lean", lean, False)):
        out = tmp_path / tag
        pipeline.evaluate([str(models[1])], EvalConfig(
            specs=specs, output_dir=str(out), draw_curves=curves, **common))
        per = np.load(out / "per_example_m1.npz")
        flags[tag] = {n: np.any([checks.broken_at(per[f"{s.name}/sound"], per[f"{s.name}/norm"],
                                                  s.eps) for s in specs if s.norm == n], 0)
                      for n in ("linf", "l2")}
        assert (out / "curves.png").exists() == curves and (out / "profile.json").exists()
    for norm in ("linf", "l2"):
        np.testing.assert_array_equal(flags["lean"][norm], flags["full"][norm])
        assert flags["full"][norm].any() and not flags["full"][norm].all()  # not trivial


# Each case: extra arguments (or a builder of them), text of the single error line.
def _truncated_saved_model(tmp_path, models):
    bad = tmp_path / "truncated" / "saved_model"
    shutil.copytree(models[0], bad)
    pb = bad / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:200])
    return [f"--models={bad}"]


def _cifar_model(tmp_path, models):
    from msd_tf.export import export_saved_model

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    return [f"--models={export_saved_model(model, str(tmp_path / 'cifar' / 'saved_model'))}"]


def _five_classes(tmp_path, models):
    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn

    path = export_saved_model(small_cnn(seed=0, classes=5), str(tmp_path / "five" / "sm"))
    return [f"--models={path}"]


def _corrupt_run_folder(tmp_path, models):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "mnist", "model": "mnist_cnn"}))
    (run / "checkpoints" / "ckpt-1.index").write_bytes(b"garbage")
    (run / "checkpoints" / "ckpt-1.data-00000-of-00001").write_bytes(b"garbage")
    return [f"--models={run}"]


def _truncated_data(tmp_path, models):
    folder = tmp_path / "data"
    shutil.copytree(SHARED_MNIST, folder)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:5000])
    return [f"--models={models[0]}", f"--data_dir={folder}"]


BAD_INPUTS = {
    "not_saved_model": (lambda t, m: [f"--models={t}"], "neither a SavedModel"),
    "truncated_saved_model": (_truncated_saved_model, "truncated or corrupt: export it again"),
    "input_shape_differs": (_cifar_model, "takes images of shape (32, 32, 3)"),
    "five_classes": (_five_classes, "expected logits [N, 10]"),
    "corrupt_run_checkpoint": (_corrupt_run_folder, "none of the 1 checkpoint(s)"),
    "truncated_data_file": (_truncated_data, "truncated or corrupt"),
    "unknown_attack": (lambda t, m: [f"--models={m[0]}", "--attacks=pgd_linf,jsma"],
                       "Unknown attack"),
    "bad_radius": (lambda t, m: [f"--models={m[0]}", "--eval_l2_eps=-1"], "eval_l2_eps"),
    "unknown_flag": (lambda t, m: [f"--models={m[0]}", "--msd_steps=3"], "msd_steps"),
    "no_models": (lambda t, m: [], "--models is required"),
    "corruptions_on_mnist": (lambda t, m: [f"--models={m[0]}", "--corruptions=all"],
                             "--corruptions needs --dataset=cifar10"),
    "bad_attack_steps": (lambda t, m: [f"--models={m[0]}", "--attack_steps=pgd_linf:x"],
                         "--attack_steps wants name:steps"),
    "only_robust_not_run": (lambda t, m: [f"--models={m[0]}", "--only_robust=cw_l2"],
                            "name attacks not in the run: ['cw_l2']"),
    "prune_with_missing": (lambda t, m: [f"--models={m[0]}", "--only_robust=pgd_linf",
                                         f"--prune_with={t / 'none'}"], "--prune_with"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_exit_2(models, tmp_path, case):
    make, message = BAD_INPUTS[case]
    args = make(tmp_path, models)
    base = ["--dataset=mnist", "--num_examples=4", "--budget=fast", "--attacks=pgd_linf",
            f"--data_dir={SHARED_MNIST}", f"--output_dir={tmp_path / 'o'}"]
    res = _evaluate([*base, *args])  # later flags win: a case's --data_dir replaces base's
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "FATAL" not in res.stderr


def test_probability_outputs_are_flagged_at_the_top_and_in_the_output(tmp_path):
    from msd_tf.export import export_saved_model
    from tests.attacks.helpers import small_cnn

    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test split not found at {SHARED_MNIST}")
    model = keras.Sequential([small_cnn(seed=3), keras.layers.Softmax()])
    path = export_saved_model(model, str(tmp_path / "soft" / "saved_model"))
    out = tmp_path / "o"
    res = _evaluate([f"--models={path}", "--dataset=mnist", f"--data_dir={SHARED_MNIST}",
                     "--num_examples=8", "--budget=fast", "--attacks=pgd_linf",
                     f"--output_dir={out}"])
    assert res.returncode == 0, res.stderr[-2000:]
    md = (out / "results.md").read_text()
    assert md.startswith("> **WARNING [soft]: outputs look like probabilities")
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("WARNING [soft]: outputs look like probabilities")
