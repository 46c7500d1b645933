"""The original AutoAttack (fra31/auto-attack, PyPI `pyautoattack`) on a PyTorch copy of
the paper's MNIST CNN: the torch half of `scripts/compare_autoattack.py`, which calls it
with an interpreter that has torch and pyautoattack (never the project's own).

  python scripts/autoattack_reference.py IN.npz OUT.npz [--norms=linf,l2,l1] [--seed=0]
      [--attacks=apgd-ce,apgd-t]

IN.npz (written by compare_autoattack.py): the CNN's weights in Keras layout, the
digits `x` ([N, 28, 28, 1] in [0, 1]), labels `y`, the radii and the TensorFlow
logits. OUT.npz: per norm, the standard version's attacks in order, the examples each
left robust (`robust_<norm>_<attack>`, cumulative as AutoAttack counts them), the
adversarial images (`x_adv_<norm>`), and the largest logit difference between the
two frameworks (`max_logit_diff`). OUT.npz is rewritten after every norm; a killed run,
started again, skips the norms it holds.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

_NAMES = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class Ported(nn.Module):
    """A Keras Sequential of Conv2D / MaxPooling2D / Flatten / Dense layers (ReLU or no
    activation) in PyTorch: NCHW convolutions with Keras' kernels, and Keras' NHWC
    flatten order, so dense weights carry over unchanged. `layers` is the JSON list
    `compare_autoattack.describe` writes; weights are `w<i>_kernel` / `w<i>_bias`."""

    def __init__(self, layers, w):
        super().__init__()
        self.steps = []
        mods = nn.ModuleList()
        for i, layer in enumerate(layers):
            kind = layer["kind"]
            if kind == "conv":
                k = w[f"w{i}_kernel"]
                pad = (k.shape[0] // 2) if layer["padding"] == "same" else 0
                m = nn.Conv2d(k.shape[2], k.shape[3], k.shape[0], stride=layer["strides"],
                              padding=pad)
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1).copy()))
                    m.bias.copy_(torch.from_numpy(w[f"w{i}_bias"]))
            elif kind == "dense":
                k = w[f"w{i}_kernel"]
                m = nn.Linear(k.shape[0], k.shape[1])
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(k.T.copy()))
                    m.bias.copy_(torch.from_numpy(w[f"w{i}_bias"]))
            else:
                m = None
            if m is not None:
                mods.append(m)
            self.steps.append((kind, layer, m))
        self.mods = mods

    def forward(self, h):  # h: [B, C, H, W]
        for kind, layer, m in self.steps:
            if kind == "pool":
                h = torch.max_pool2d(h, layer["pool"])
            elif kind == "flatten":
                h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Keras' NHWC flatten
            else:
                h = m(h)
            if layer.get("relu"):
                h = torch.relu(h)
        return h


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--norms", default="linf,l2,l1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--attacks", default="",
                        help="comma list, a subset of the standard version's attacks "
                             "(apgd-ce, apgd-t, fab-t, square) in its order; default all")
    args = parser.parse_args()
    from pyautoattack import AutoAttack

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    data = np.load(args.inputs)
    model = Ported(json.loads(str(data["layers"])), data).eval()
    x = torch.from_numpy(data["x"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(data["y"].astype(np.int64))
    with torch.no_grad():
        logits = model(x).numpy()
    out = {"max_logit_diff": np.abs(logits - data["logits"]).max(),
           "clean": logits.argmax(1) == data["y"]}
    if os.path.exists(args.outputs):  # a killed run: keep the norms it finished
        with np.load(args.outputs) as f:
            out.update({k: f[k] for k in f.files})
    for norm in args.norms.split(","):
        if f"attacks_{norm}" in out:
            continue
        eps = float(data[f"eps_{norm}"])
        aa = AutoAttack(model, norm=_NAMES[norm], eps=eps, version="standard",
                        seed=args.seed, device="cpu")
        robust = out["clean"].copy()
        x_adv = x.clone()
        order = list(aa.attacks_to_run)
        if args.attacks:
            unknown = set(args.attacks.split(",")) - set(order)
            if unknown:
                raise SystemExit(f"error: --attacks {sorted(unknown)} not in {order}")
            order = [a for a in order if a in args.attacks.split(",")]
        for attack in order:
            idx = np.flatnonzero(robust)
            t0 = time.time()
            if len(idx):
                aa.attacks_to_run = [attack]  # the standard version's settings stay
                adv, _ = aa.run_standard_evaluation(x[idx], y[idx], batch_size=args.batch_size)
                with torch.no_grad():
                    broken = (model(adv).argmax(1) != y[idx]).numpy()
                x_adv[idx[broken]] = adv[broken]
                robust[idx[broken]] = False
            out[f"robust_{norm}_{attack}"] = robust.copy()
            out[f"seconds_{norm}_{attack}"] = time.time() - t0
            print(f"{norm} eps={eps:g} after {attack}: {robust.mean():.1%} robust "
                  f"({time.time() - t0:.0f} s)", flush=True)
        out[f"attacks_{norm}"] = np.array(order)
        out[f"x_adv_{norm}"] = x_adv.numpy().transpose(0, 2, 3, 1)
        np.savez_compressed(args.outputs + ".tmp.npz", **out)  # after every norm
        os.replace(args.outputs + ".tmp.npz", args.outputs)


if __name__ == "__main__":
    main()
