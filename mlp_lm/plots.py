"""The pictures: loss curve, learning-rate sweep, 2-D embedding. matplotlib is optional."""
import importlib.util
import io
import sys
import unicodedata
import warnings
from pathlib import Path

import numpy as np

from . import shell, wordfile
from .atomic import write_whole
from .cli import signals_held
from .wordfile import has_checkout

HINT = "matplotlib is not installed, so no pictures: pip install -e '.[plot]' to get them"
HINT_NO_CLONE = "matplotlib is not installed, so no pictures: pip install matplotlib to get them"  # '.[plot]' is the clone
PICTURE_BYTES = 2**18  # room for a run's two pictures (space.bytes_to_save): 85 KB on names, 200 KB with 200 CJK labels
LABELLED_MAX = 200  # symbols the embedding picture labels: past this the labels only blot each other out


def hint():
    """How to get the pictures: the clone's extra where there is a clone (pip install -e), else matplotlib itself.
    '.[plot]' is the clone only from the clone's own folder: from any other, the clone's path takes the dot's place."""
    if not has_checkout():
        return HINT_NO_CLONE
    try:
        here = Path.cwd().resolve() == wordfile.CHECKOUT.resolve()
    except OSError:  # a current folder deleted since: not the clone
        here = False
    return HINT if here else HINT.replace("'.[plot]'", shell.path(f"{wordfile.CHECKOUT}[plot]"))


def available():
    """Whether matplotlib is installed (without the half second importing pyplot takes)."""
    return importlib.util.find_spec("matplotlib") is not None


def try_pyplot():
    """(pyplot, None), or (None, why there are no pictures): matplotlib not installed, or not loading
    (an MPLBACKEND it does not know raises ValueError, not ImportError)."""
    if not available():
        return None, hint()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt, None
    except Exception as e:  # the run is saved whatever this is: only its pictures are missing
        return None, f"matplotlib did not load ({reason(e)}), so no pictures"


def draw(pictures, saved=None):
    """Draw `pictures`, [(path, draw(plt, path))], once `saved` ("the run", "the table") is written.
    Returns (the paths drawn, why there are no pictures or None, the stop signal that came meanwhile or None,
    [(path, why, errno or None)] of those that could not be drawn). A picture that cannot be drawn, whatever stops it, is a
    warning after `saved`, or with `saved` None only one of those returned. The stop signals are held while
    matplotlib loads and draws (its C extensions turn one raised inside them into an ImportError, which would
    pass for a picture that failed) and returned for the caller to raise once it has said what it wrote.
    No pictures: nothing to draw, so nothing loaded and nothing to say of matplotlib."""
    drawn, failed = [], []
    if not pictures:
        return drawn, None, None, failed
    with signals_held() as held:
        plt, no_pictures = try_pyplot()  # only now: importing pyplot takes half a second
        for path, draw_one in pictures if plt else ():
            try:
                draw_one(plt, path)
                drawn.append(path)
            except Exception as e:
                failed.append((path, reason(e), getattr(e, "errno", None)))
                if saved:
                    print(f"warning: could not draw {shell.shown(path)} ({reason(e)}); {saved} is saved without it", file=sys.stderr)
    return drawn, no_pictures, held[0] if held else None, failed


def reason(e, most=120):
    """Why a picture was not drawn, on one line: an OSError's own words ("Is a directory"), else the
    exception's name and the first line of its message, cut at `most` characters."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = (str(e).strip().splitlines() or [""])[0]
    text = text if len(text) <= most else text[:most - 3] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def label(symbol):
    """A symbol as the embedding picture writes it: a space as an open box, a combining mark on a dotted
    circle (alone it would sit on nothing), any other that draws nothing (a control, a soft hyphen, a
    zero-width joiner, another space) as its escape (\\x1b, \\xad, \\u200d)."""
    if symbol == " ":
        return "\u2423"
    if unicodedata.combining(symbol):
        return "\u25cc" + symbol
    if unicodedata.category(symbol)[0] in "CZ":  # a format character or a space, invisible: its escape
        return symbol.encode("unicode_escape").decode("ascii")
    return symbol


def plot_loss(plt, losses, devs, path, kept=None):
    """The minibatch losses, their running mean and the dev evaluations; kept: the step whose model
    --keep-best saved, marked on the dev curve."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    with np.errstate(divide="ignore"):  # a loss of 0 (a short list learned by heart) is off the log scale: said below
        ax.plot(steps, np.log10(losses), lw=0.3, alpha=0.4, label="minibatch")
        w = len(losses) // 200
        if w >= 2:  # (a run of fewer than 400 steps has no mean worth a line of its own)
            smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
            ax.plot(steps[w - 1:], np.log10(smooth), lw=1.5, label=f"mean of {w} steps")
        if devs:
            ax.plot(list(devs), np.log10(list(devs.values())), "o-", label="dev")
        if kept is not None and kept in devs:
            ax.plot([kept], [np.log10(devs[kept])], "*", ms=14, color="black", label=f"kept (step {kept:,})")
    zeros = int(np.count_nonzero(np.asarray(losses) == 0))
    if zeros:
        ax.set_title(f"{zeros:,} of {len(losses):,} minibatch losses are 0, below the log scale: not drawn", fontsize=10)
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
    labelled = len(C) <= LABELLED_MAX
    ax.scatter(C[:, 0], y, s=200 if labelled else 4, c="#dddddd" if labelled else "#555555")
    if labelled:
        for i, s in enumerate(vocab.itos):
            ax.text(C[i, 0], y[i], label(s), ha="center", va="center", fontsize=12)
    ax.set_xlabel("C[:, 0]")
    if C.shape[1] > 1:
        ax.set_ylabel("C[:, 1]")
    else:
        ax.set_yticks([])
    title = ("the one embedding dimension" if C.shape[1] == 1 else  # a wider embedding's is only a slice of it:
             f"the first 2 of {C.shape[1]} embedding dimensions" if C.shape[1] > 2 else "")  # say so
    if not labelled:
        title = f"{title or 'the embedding'}: {len(C):,} symbols, too many to label"
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    with warnings.catch_warnings():  # one for each symbol the font has no glyph for: 40,000 lines for 10,000
        warnings.filterwarnings("ignore", message="Glyph .* missing from")
        fig.tight_layout()
        _save(plt, fig, path)


def plot_lr_sweep(plt, lre, losses, path, rows=(), suggested=None):
    """The sweep's minibatch losses against the exponent of their rate; rows: its table's bins (low, high,
    rate, mean loss), drawn as their means; suggested: the rate the table suggests, marked."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(lre, losses, lw=0.5, label="minibatch")
    if len(rows):
        centres, means = [(lo + hi) / 2 for lo, hi, _, _ in rows], [mean for *_, mean in rows]
        ax.plot(centres, means, "o-", label="mean of each row of the table")
    if suggested is not None:
        ax.axvline(np.log10(suggested), color="black", lw=1, ls="--", label=f"suggested: {suggested:.2g}")
    ax.set_xlabel("log10 learning rate")
    ax.set_ylabel("minibatch loss")
    ax.set_title(f"learning-rate sweep: {len(lre):,} steps, one rate each", fontsize=10)
    ax.legend()
    fig.tight_layout()
    _save(plt, fig, path)


def _save(plt, fig, path):
    """The picture whole or not at all: drawn into memory, then written as atomic.write_whole does
    (a stop signal or a full disk while matplotlib wrote straight to the file left half a PNG). A link
    in its place is replaced, not followed: a run's picture goes into its folder, never through a link
    there over a file elsewhere."""
    try:
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=120)
    finally:
        plt.close(fig)
    write_whole(path, png.getvalue(), follow=False)
