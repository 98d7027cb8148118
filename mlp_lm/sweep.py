"""The lecture's learning-rate search: one SGD step at each of many rates, low to high.

The loss falls while the rate is useful and turns up once it is too large; a
rate a little below that turn is a good one to train with.
"""
import math

import numpy as np

from . import model


def lr_sweep(params, X, Y, steps, batch_size, seed):
    """One step at each of `steps` rates spaced evenly in exponent from 1e-3 to 1.

    Returns (exponents, losses); the losses after the rate blew up stay NaN.
    """
    rng = np.random.default_rng([seed, 1])
    lre = np.linspace(-3, 0, steps)  # exponents
    losses = np.full(steps, np.nan)
    with np.errstate(over="raise", invalid="raise"):
        for step, e in enumerate(lre):
            ix = rng.integers(0, len(Y), size=batch_size)
            try:
                loss, grads = model.loss_and_grads(params, X[ix], Y[ix])
                if not math.isfinite(loss):
                    break
                losses[step] = loss
                for k in params:
                    params[k] -= 10**e * grads[k]
            except FloatingPointError:
                break  # the rate is past blowing up: the remaining rates stay NaN in the table
    return lre, losses


def sweep_table(lre, losses, n_bins=12):
    """Rows of (exponent range, rate at its centre, mean loss) and the suggested rate."""
    edges = np.linspace(-3, 0, n_bins + 1)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (lre >= lo) & ((lre < hi) if hi < 0 else (lre <= hi))
        vals = losses[sel]
        mean = float(np.mean(vals)) if vals.size and np.all(np.isfinite(vals)) else math.nan
        rows.append((lo, hi, 10 ** ((lo + hi) / 2), mean))
    finite = [r for r in rows if math.isfinite(r[3])]
    best = min(finite, key=lambda r: r[3]) if finite else None
    return rows, best
