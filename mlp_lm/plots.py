"""The pictures: loss curve, learning-rate sweep, 2-D embedding. matplotlib is optional."""
import io

import numpy as np

from .atomic import write_whole

HINT = "matplotlib is not installed, so no pictures: pip install -e '.[plot]' to get them"


def try_pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def plot_loss(plt, losses, devs, path, kept=None):
    """The minibatch losses, their running mean and the dev evaluations; kept: the step whose model
    --keep-best saved, marked on the dev curve."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, np.log10(losses), lw=0.3, alpha=0.4, label="minibatch")
    w = max(1, len(losses) // 200)
    if len(losses) >= w:
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1:], np.log10(smooth), lw=1.5, label=f"mean of {w} steps")
    if devs:
        ax.plot(list(devs), np.log10(list(devs.values())), "o-", label="dev")
    if kept is not None and kept in devs:
        ax.plot([kept], [np.log10(devs[kept])], "*", ms=14, color="black", label=f"kept (step {kept:,})")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss (nats)")
    ax.legend()
    fig.tight_layout()
    _save(plt, fig, path)


def plot_embedding(plt, C, vocab, path):
    """The first two embedding dimensions, one labelled point per symbol, as in the lecture."""
    C = np.asarray(C, dtype=np.float64)
    y = C[:, 1] if C.shape[1] > 1 else np.zeros(len(C))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(C[:, 0], y, s=200, c="#dddddd")
    for i, s in enumerate(vocab.itos):
        ax.text(C[i, 0], y[i], s, ha="center", va="center", fontsize=12)
    ax.set_xlabel("C[:, 0]")
    ax.set_ylabel("C[:, 1]")
    if C.shape[1] > 2:  # say so: a wider embedding's picture is only a slice of it
        ax.set_title(f"the first 2 of {C.shape[1]} embedding dimensions", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path)


def plot_lr_sweep(plt, lre, losses, path):
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lre, losses, lw=0.5)
    ax.set_xlabel("log10 learning rate")
    ax.set_ylabel("minibatch loss")
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt, fig, path):
    """The picture whole or not at all: drawn into memory, then written as atomic.write_whole does
    (a stop signal or a full disk while matplotlib wrote straight to the file left half a PNG)."""
    try:
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=120)
    finally:
        plt.close(fig)
    write_whole(path, png.getvalue())
