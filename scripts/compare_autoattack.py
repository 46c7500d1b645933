"""Our evaluation against the original AutoAttack, example by example (outside CI).

  python -m scripts.compare_autoattack --model=runs/table3_small/msd/saved_model \
      --data_dir=../shared/data/mnist --ours=runs/table3_small/eval \
      --output_dir=runs/compare_autoattack

1. Copies the MNIST CNN's layers and weights (a SavedModel or a training-run folder of
   `models.mnist_cnn`; `describe` ports any Sequential of Conv2D / MaxPooling2D /
   Flatten / Dense) and the digits into an npz.
2. Runs `scripts/autoattack_reference.py` with an interpreter that has PyTorch and the
   authors' AutoAttack (PyPI `pyautoattack`, fra31/auto-attack): `--torch_python`, or a
   virtual environment made on first use in `--venv` (`pip install torch
   pyautoattack==0.2.0`; neither is a project dependency). AutoAttack's standard
   version runs per norm at the paper's radii.
3. Checks every AutoAttack example with our TensorFlow model by our evaluation's own
   rule (`msd_tf.evaluation.checks`: `verify`, a fresh forward pass misclassifies it
   inside [0, 1], and `within`, its norm is inside the radius) and, given `--ours` (an
   `msd_tf.evaluate` output folder of the same model and digits), compares the robust
   flags: writes `comparison.json` / `comparison.md` (robust accuracy per norm and
   union for both, and how many examples each calls robust that the other breaks).
"""

import argparse
import json
import os
import subprocess
import sys
import venv

import numpy as np

from msd_tf.threats import NORMS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def describe(model) -> tuple[list[dict], dict]:
    """The layers of a Keras Sequential CNN (Conv2D, MaxPooling2D, Flatten, Dense with
    ReLU or no activation) as JSON-ready dicts, and its weights `w<i>_kernel`/`w<i>_bias`,
    for `autoattack_reference.Ported`. Anything else raises a ValueError naming it."""
    import keras

    layers, weights = [], {}
    for i, layer in enumerate(model.layers):
        act = getattr(layer, "activation", None)
        name = getattr(act, "__name__", "linear")
        if name not in ("relu", "linear"):
            raise ValueError(f"layer {layer.name}: activation {name} cannot be ported")
        if isinstance(layer, keras.layers.Conv2D):
            if layer.padding == "same" and tuple(layer.strides) != (1, 1):
                raise ValueError(f"layer {layer.name}: strided 'same' padding cannot be ported")
            layers.append({"kind": "conv", "strides": int(layer.strides[0]),
                           "padding": layer.padding, "relu": name == "relu"})
        elif isinstance(layer, keras.layers.Dense):
            layers.append({"kind": "dense", "relu": name == "relu"})
        elif isinstance(layer, keras.layers.MaxPooling2D):
            layers.append({"kind": "pool", "pool": int(layer.pool_size[0])})
        elif isinstance(layer, keras.layers.Flatten):
            layers.append({"kind": "flatten"})
        else:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) cannot be ported")
        if layers[-1]["kind"] in ("conv", "dense"):
            weights[f"w{i}_kernel"] = layer.kernel.numpy()
            weights[f"w{i}_bias"] = layer.bias.numpy()
    return layers, weights


def _torch_python(args) -> str:
    if args.torch_python:
        return args.torch_python
    python = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(python):
        print(f"+ making {args.venv} (torch, pyautoattack==0.2.0)", flush=True)
        venv.create(args.venv, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "torch", "pyautoattack==0.2.0",
                        "numpy"], check=True)
    return python


def _ported(args, path: str):
    """Writes the weights, digits and our logits; returns (model, x, y, radii)."""
    from msd_tf import data, threats
    from msd_tf.export import load_weights_into
    from msd_tf.models import mnist_cnn

    x, y = data.load_arrays(args.dataset, args.split, args.data_dir)
    x, y = x[:args.num_examples], y[:args.num_examples]
    model = mnist_cnn()
    load_weights_into(model, args.model)
    layers, weights = describe(model)
    radii = threats.radii(args.dataset)
    logits = model.predict(x, batch_size=500, verbose=0)
    np.savez(path, x=x, y=y, logits=logits, layers=json.dumps(layers), **weights,
             **{f"eps_{n}": radii[n] for n in NORMS})
    return model, x, y, radii


def _verified(model, x, y, x_adv, norm: str, eps: float) -> np.ndarray:
    """Where AutoAttack's example fools our model inside ball and box, by the rule of our
    evaluation (`checks.verify`, then `checks.broken_at`, i.e. `checks.within`)."""
    from msd_tf.evaluation import checks

    sound, norms, _ = checks.verify(lambda t: model(t, training=False), x, y, x_adv,
                                    np.ones(len(x), bool), norm=norm)
    return checks.broken_at(sound, norms, eps)


def _ours(folder: str, model_name: str | None, n: int) -> dict:
    """norm -> [N] robust flags of an msd_tf.evaluate output folder
    (`compare.robust_flags`; a norm it did not attack: the clean flags)."""
    from msd_tf.evaluation import compare

    try:
        flags = compare.robust_flags(folder)
    except compare.CompareError as e:
        sys.exit(f"error: --ours: {e}")
    names = sorted(flags)
    name = model_name or (names[0] if len(names) == 1 else None)
    if name not in names:
        sys.exit(f"error: --ours {folder} holds models {names}; name one with --ours_model.")
    return {norm: flags[name].get(norm, flags[name]["clean"])[:n] for norm in NORMS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--split", default="test[:500]")
    parser.add_argument("--num_examples", type=int, default=None,
                        help="the first N digits of --split (default: all)")
    parser.add_argument("--ours", default=None, help="an msd_tf.evaluate --output_dir")
    parser.add_argument("--ours_model", default=None, help="model name in --ours")
    parser.add_argument("--output_dir", default="runs/compare_autoattack")
    parser.add_argument("--norms", default=",".join(NORMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch_python", default=None)
    parser.add_argument("--venv", default=os.path.expanduser("~/.cache/msd_tf/autoattack-venv"))
    args = parser.parse_args()
    for path, what in ((args.model, "--model"), (args.ours, "--ours")):
        if path is not None and not os.path.exists(path):
            sys.exit(f"error: {what} {path}: no such file or folder.")
    os.makedirs(args.output_dir, exist_ok=True)
    inputs = os.path.join(args.output_dir, "ported.npz")
    outputs = os.path.join(args.output_dir, "autoattack.npz")
    model, x, y, radii = _ported(args, inputs)
    done = set()
    if os.path.exists(outputs):
        with np.load(outputs) as f:
            done = {k[len("attacks_"):] for k in f.files if k.startswith("attacks_")}
    if not set(args.norms.split(",")) <= done:  # (the reference skips finished norms)
        subprocess.run([_torch_python(args), os.path.join(REPO, "scripts",
                        "autoattack_reference.py"), inputs, outputs, f"--norms={args.norms}",
                        f"--seed={args.seed}"], check=True)
    with np.load(outputs) as f:
        aa = {k: f[k] for k in f.files}
    norms = args.norms.split(",")
    report = {"model": args.model, "split": args.split, "examples": int(len(y)),
              "max_logit_diff": float(aa["max_logit_diff"]), "radii": radii, "norms": {}}
    clean = aa["clean"]
    ours = _ours(args.ours, args.ours_model, len(y)) if args.ours else None
    aa_union, ours_union = clean.copy(), clean.copy()
    for norm in norms:
        attacks = [str(a) for a in aa[f"attacks_{norm}"]]
        robust = aa[f"robust_{norm}_{attacks[-1]}"]
        verified = _verified(model, x, y, aa[f"x_adv_{norm}"], norm, radii[norm])
        row = {"autoattack": float(robust.mean()),
               "after_each": {a: float(aa[f"robust_{norm}_{a}"].mean()) for a in attacks},
               "seconds": {a: round(float(aa[f"seconds_{norm}_{a}"]), 1) for a in attacks},
               "unverified_breaks": int((clean & ~robust & ~verified).sum())}
        aa_union &= robust
        if ours is not None:
            mine = ours[norm]
            ours_union &= mine
            row.update(ours=float(mine.mean()), robust_ours_broken_aa=int((mine & ~robust).sum()),
                       robust_aa_broken_ours=int((robust & ~mine).sum()))
        report["norms"][norm] = row
    report["union"] = {"autoattack": float(aa_union.mean())}
    if ours is not None:
        report["union"].update(ours=float(ours_union.mean()),
                               robust_ours_broken_aa=int((ours_union & ~aa_union).sum()),
                               robust_aa_broken_ours=int((aa_union & ~ours_union).sum()))
    with open(os.path.join(args.output_dir, "comparison.json"), "w") as f:
        json.dump(report, f, indent=2)
    lines = [f"# Ours against AutoAttack (standard), {args.model}, {args.split}",
             "", f"Largest logit difference TF / PyTorch: {report['max_logit_diff']:.2g}.", "",
             "| norm (radius) | ours | AutoAttack | robust for ours, broken by AA | "
             "robust for AA, broken by ours | AA per attack (robust after) |",
             "|---|---|---|---|---|---|"]
    for norm in norms:
        r = report["norms"][norm]
        steps = ", ".join(f"{a} {v:.1%}" for a, v in r["after_each"].items())
        lines.append(f"| {norm} ({radii[norm]:g}) | {r.get('ours', float('nan')):.1%} | "
                     f"{r['autoattack']:.1%} | {r.get('robust_ours_broken_aa', '-')} | "
                     f"{r.get('robust_aa_broken_ours', '-')} | {steps} |")
    u = report["union"]
    lines.append(f"| union | {u.get('ours', float('nan')):.1%} | {u['autoattack']:.1%} | "
                 f"{u.get('robust_ours_broken_aa', '-')} | {u.get('robust_aa_broken_ours', '-')}"
                 " | |")
    with open(os.path.join(args.output_dir, "comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
