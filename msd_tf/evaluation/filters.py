"""First-layer filters of MNIST models (appendix E): extraction, the count of
near-single-non-zero ("thresholding") filters, and an image grid."""

import numpy as np


def first_conv_kernel(path: str) -> np.ndarray:
    """The first 5x5 convolution kernel `[5, 5, C_in, C_out]` of a SavedModel or of a
    training-run folder (its newest checkpoint that restores).

    Raises:
      ValueError: the model cannot be loaded, or has no 5x5 convolution.
    """
    from msd_tf.export import load_model

    kernels = [np.asarray(v.numpy()) for v in load_model(path).variables
               if len(v.shape) == 4 and v.shape[0] == 5]
    if not kernels:
        raise ValueError(f"{path}: no 5x5 convolution kernel found.")
    # The first layer is the one reading the image: fewest input channels.
    return min(kernels, key=lambda k: k.shape[2])


def thresholding_filters(kernel: np.ndarray, *, ratio: float = 0.25) -> np.ndarray:
    """Which filters are near-single-non-zero: the second largest |weight| is below
    `ratio` times the largest (per output channel, over the 5 x 5 x C_in weights)."""
    w = np.abs(kernel.reshape(-1, kernel.shape[-1]))  # [25 * C_in, C_out]
    top = -np.sort(-w, axis=0)
    return top[1] < ratio * top[0]


def plot_filters(kernel: np.ndarray, path: str, *, title: str = "") -> None:
    """Saves the filters (first input channel) as a grid, each scaled to its own range."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = kernel.shape[-1]
    cols = 8
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows + 0.4), squeeze=False)
    flags = thresholding_filters(kernel)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            f = kernel[:, :, 0, i]
            m = np.abs(f).max() or 1.0
            ax.imshow(f, cmap="bwr", vmin=-m, vmax=m)
            if flags[i]:
                ax.set_title("T", fontsize=7, color="red")
    fig.suptitle(f"{title} ({int(flags.sum())}/{n} thresholding)", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
