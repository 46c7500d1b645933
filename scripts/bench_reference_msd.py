"""Times one MSD iteration as the reference PyTorch code computes it (locuslab/robust_union,
MNIST/mnist_funcs.py, `msd_v0`), re-expressed here in PyTorch for the measurement (its
repository is not installed on this machine): the same operations in the same order, on
the paper's MNIST CNN at batch 100. Outside the package and CI; needs torch (e.g.
`pip install torch==2.13.0` in a separate virtual environment).

One iteration: a forward and backward pass for the input gradient (batch B); the l_2,
l_inf and l_1 candidates (the l_1 one through the top-k direction with the box mask and
the sort-based l_1-ball projection, whose threshold is gathered by a Python loop over the
batch as in the reference); three separate forward passes of B to score them; the
per-example choice. Prints the median time per iteration and the threads, to compare
with `python -m scripts.bench` (ours) on the same machine, the same hour.

Usage: python scripts/bench_reference_msd.py [--threads 2] [--iterations 20] [--rounds 5]
"""

import argparse
import random
import statistics
import time

import torch
from torch import nn


def mnist_cnn() -> nn.Module:
    """The paper's MNIST CNN (PAPER_NOTES section 6)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))


def _l2(z):
    return z.view(z.shape[0], -1).norm(dim=1)[:, None, None, None]


def _l1(z):
    return z.view(z.shape[0], -1).abs().sum(dim=1)[:, None, None, None]


def topk_direction(grad, x_adv, gap, k):
    """Signs of the k largest |grad| among the coordinates the box leaves movable."""
    b = grad.shape[0]
    blocked = ((grad < 0) & (x_adv <= gap)) | ((grad > 0) & (x_adv >= 1 - gap)) | \
        (x_adv <= 0) | (x_adv >= 1)
    g = grad.reshape(b, 1, -1).clone()
    g[blocked.reshape(b, 1, -1)] = 0
    kth = g.abs().topk(k, dim=2)[0][:, :, -1:]
    return ((g.abs() >= kth).float() * g.sign()).view_as(grad)


def project_l1(v, eps):
    """Sort-based projection onto the l_1 ball, threshold gathered per example in Python."""
    u = v.abs()
    if (u.sum(dim=(1, 2, 3)) <= eps).all():
        return v
    b = v.shape[0]
    s = u.view(b, 1, -1)
    n = s.shape[2]
    s, _ = torch.sort(s, descending=True)
    cssv = s.cumsum(dim=2)
    comp = (s * torch.arange(1, n + 1).float() > (cssv - eps)).float()
    rho = torch.argmax(comp.cumsum(dim=2) + (comp - 1).cumsum(dim=2), dim=2).view(b)
    c = torch.FloatTensor([cssv[i, 0, rho[i]] for i in range(b)]) - eps
    theta = (c / (rho.float() + 1)).view(b, 1, 1, 1)
    w = (u - theta).clamp(min=0) * v.sign()
    return w * eps / _l1(w)


def msd_iterations(model, x, y, iterations, eps=(0.3, 2.0, 10.0), alpha=(0.01, 0.1, 0.8)):
    e_inf, e_2, e_1 = eps
    a_inf, a_2, a_1_default = alpha
    delta = torch.zeros_like(x, requires_grad=True)
    best_delta, best_loss = torch.zeros_like(x), torch.zeros(len(y))
    for _ in range(iterations):
        loss = nn.CrossEntropyLoss()(model(x + delta), y)
        loss.backward()
        with torch.no_grad():
            d2 = delta.data + a_2 * delta.grad / _l2(delta.grad)
            d2 = torch.min(torch.max(d2, -x), 1 - x)
            d2 *= e_2 / _l2(d2).clamp(min=e_2)
            dinf = (delta.data + a_inf * delta.grad.sign()).clamp(-e_inf, e_inf)
            dinf = torch.min(torch.max(dinf, -x), 1 - x)
            k = random.randint(5, 20)
            a_1 = a_1_default / k * 20
            d1 = delta.data + a_1 * topk_direction(delta.grad, x + delta.data, a_1, k)
            d1 = torch.min(torch.max(project_l1(d1, e_1), -x), 1 - x)
            step_loss = torch.zeros(len(y))
            for cand in (d1, d2, dinf):
                cand_loss = nn.CrossEntropyLoss(reduction="none")(model(x + cand), y)
                take = cand_loss >= step_loss
                best_delta[take] = cand[take]
                step_loss = torch.max(step_loss, cand_loss)
            delta.data = best_delta.clone()
            best_loss = torch.max(best_loss, step_loss)
        delta.grad.zero_()
    return delta.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    model = mnist_cnn().eval()
    x, y = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,))
    msd_iterations(model, x, y, 2)  # warm-up
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        msd_iterations(model, x, y, args.iterations)
        times.append((time.perf_counter() - t0) / args.iterations)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: reference MSD "
          f"iteration (batch 100) median {1e3 * statistics.median(times):.1f} ms, range "
          f"{1e3 * min(times):.1f}-{1e3 * max(times):.1f} ms over {args.rounds} rounds of "
          f"{args.iterations}")


if __name__ == "__main__":
    main()
