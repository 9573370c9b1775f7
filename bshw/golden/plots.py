"""Plots a user looks at, drawn from a run directory's metrics.json (paper Fig. 2b-g, Fig. 3d/e)."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bshw.io import atomic_savefig  # noqa: E402


def _epochs(run):
    return json.loads((Path(run) / "metrics.json").read_text())["epochs"]


def learning_curves(epochs, title=""):
    """Train loss and test error per inference method against epoch (Fig. 2b/2c)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ep = [e["epoch"] for e in epochs]
    a1.plot(ep, [e["train_loss"] for e in epochs], "o-")
    a1.set(xlabel="epoch", ylabel="cross-entropy (train)", title="training loss")
    for m in ("hp", "binary", "stochastic"):
        a2.plot(ep, [100 * e["test_error"][m] for e in epochs], "o-", label=m)
    a2.set(xlabel="epoch", ylabel="test error (%)", title="test error", yscale="log")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def weight_density(epochs, title=""):
    """Per-layer weight histograms, early epochs light and late ones dark (Fig. 2d/2e)."""
    n = len(epochs[-1]["weight_hist"])
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for li, ax in enumerate(axes[0]):
        for k, e in enumerate(epochs):
            h = e["weight_hist"][li]
            bins = len(h["counts"])
            xs = [-h["lim"] + (2 * i + 1) * h["lim"] / bins for i in range(bins)]
            total = sum(h["counts"]) or 1
            ax.plot(xs, [c / total for c in h["counts"]], color=cmap(k / max(1, len(epochs) - 1)), lw=1)
        ax.set(title=f"layer {li + 1}", xlabel="weight", yscale="log")
    axes[0][0].set_ylabel("fraction")
    fig.suptitle(title + " (colour: epoch, dark = first)")
    fig.tight_layout()
    return fig


def activation_cdf(epochs, title=""):
    """CDF of each hidden layer's activations z on test images, per epoch (Fig. 2f/2g)."""
    n = len(epochs[-1]["activation_quantiles"])
    fig, axes = plt.subplots(1, max(1, n), figsize=(3.4 * max(1, n), 3), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for li in range(n):
        ax = axes[0][li]
        for k, e in enumerate(epochs):
            q = e["activation_quantiles"][li]
            ax.plot(q, [i / (len(q) - 1) for i in range(len(q))], color=cmap(k / max(1, len(epochs) - 1)), lw=1)
        ax.set(title=f"hidden layer {li + 1}", xlabel="activation z", xlim=(0, 1))
    axes[0][0].set_ylabel("CDF")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_run(run):
    """Write learning_curves.png, weight_density.png and activation_cdf.png into the run dir."""
    run = Path(run)
    epochs = _epochs(run)
    cfg = json.loads((run / "config.json").read_text())
    title = f"{cfg['net']} {cfg['algo']} {cfg['weights']}"
    out = []
    for name, fn in (("learning_curves", learning_curves), ("weight_density", weight_density),
                     ("activation_cdf", activation_cdf)):
        fig = fn(epochs, title)
        out.append(atomic_savefig(run / f"{name}.png", fig, dpi=110))
        plt.close(fig)
    return out
