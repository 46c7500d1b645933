"""First-layer 5x5 filters of MNIST models as image grids (appendix E, Figures 6-10).

Usage: python -m msd_tf.plot_filters --out=filters runs/mnist/linf/saved_model runs/mnist/msd
Prints, per model, how many filters are near-single-non-zero ("thresholding": the second
largest |weight| below --ratio times the largest), and writes <out>/<model>.png.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    from msd_tf.evaluation import filters
    from msd_tf.export import model_name

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="SavedModel or training-run folders")
    parser.add_argument("--out", default="filters")
    parser.add_argument("--ratio", type=float, default=0.25)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for path in args.models:
        name = model_name(path)
        try:
            kernel = filters.first_conv_kernel(path)
        except ValueError as e:
            sys.exit(f"error: {e}")
        count = int(filters.thresholding_filters(kernel, ratio=args.ratio).sum())
        filters.plot_filters(kernel, os.path.join(args.out, f"{name}.png"), title=name)
        print(f"{name}: {count}/{kernel.shape[-1]} thresholding filters "
              f"-> {os.path.join(args.out, name + '.png')}")


def run():
    main()


if __name__ == "__main__":
    run()
