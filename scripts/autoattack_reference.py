"""The original AutoAttack (fra31/auto-attack, PyPI `pyautoattack`) on a PyTorch copy of
the paper's MNIST CNN: the torch half of `scripts/compare_autoattack.py`, which calls it
with an interpreter that has torch and pyautoattack (never the project's own).

  python scripts/autoattack_reference.py IN.npz OUT.npz [--norms=linf,l2,l1] [--seed=0]

IN.npz (written by compare_autoattack.py): the CNN's weights in Keras layout, the
digits `x` ([N, 28, 28, 1] in [0, 1]), labels `y`, the radii and the TensorFlow
logits. OUT.npz: per norm, the standard version's attacks in order, the examples each
left robust (`robust_<norm>_<attack>`, cumulative as AutoAttack counts them), the
adversarial images (`x_adv_<norm>`), and the largest logit difference between the
two frameworks (`max_logit_diff`).
"""

import argparse
import time

import numpy as np
import torch
from torch import nn

_NAMES = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class MnistCnn(nn.Module):
    """The Keras `mnist_cnn` in PyTorch: NCHW convolutions, then the NHWC flatten order
    of Keras so the dense weights carry over unchanged."""

    def __init__(self, w):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.fc2 = nn.Linear(1024, 10)
        with torch.no_grad():
            for conv, k, b in ((self.conv1, "conv1_kernel", "conv1_bias"),
                               (self.conv2, "conv2_kernel", "conv2_bias")):
                conv.weight.copy_(torch.from_numpy(w[k].transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(w[b]))
            for fc, k, b in ((self.fc1, "dense1_kernel", "dense1_bias"),
                             (self.fc2, "dense2_kernel", "dense2_bias")):
                fc.weight.copy_(torch.from_numpy(w[k].T.copy()))
                fc.bias.copy_(torch.from_numpy(w[b]))

    def forward(self, x):  # x: [B, 1, 28, 28]
        h = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # Keras' NHWC flatten
        return self.fc2(torch.relu(self.fc1(h)))


class SmallCnn(nn.Module):
    """tests/attacks/helpers.small_cnn in PyTorch: conv 5x5x4 stride 2 (valid) - ReLU -
    dense 10, flattened in Keras' NHWC order."""

    def __init__(self, w):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5, stride=2)
        self.fc1 = nn.Linear(12 * 12 * 4, 10)
        with torch.no_grad():
            self.conv1.weight.copy_(torch.from_numpy(w["conv1_kernel"].transpose(3, 2, 0, 1)
                                                     .copy()))
            self.conv1.bias.copy_(torch.from_numpy(w["conv1_bias"]))
            self.fc1.weight.copy_(torch.from_numpy(w["dense1_kernel"].T.copy()))
            self.fc1.bias.copy_(torch.from_numpy(w["dense1_bias"]))

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        return self.fc1(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--norms", default="linf,l2,l1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=500)
    args = parser.parse_args()
    from pyautoattack import AutoAttack

    torch.set_num_threads(max(torch.get_num_threads(), 1))
    data = np.load(args.inputs)
    model = (MnistCnn(data) if "conv2_kernel" in data else SmallCnn(data)).eval()
    x = torch.from_numpy(data["x"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(data["y"].astype(np.int64))
    with torch.no_grad():
        logits = model(x).numpy()
    out = {"max_logit_diff": np.abs(logits - data["logits"]).max(),
           "clean": logits.argmax(1) == data["y"]}
    for norm in args.norms.split(","):
        eps = float(data[f"eps_{norm}"])
        aa = AutoAttack(model, norm=_NAMES[norm], eps=eps, version="standard",
                        seed=args.seed, device="cpu")
        robust = out["clean"].copy()
        x_adv = x.clone()
        order = list(aa.attacks_to_run)
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
    np.savez_compressed(args.outputs, **out)


if __name__ == "__main__":
    main()
