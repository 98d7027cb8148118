"""The lecture's learning-rate search: one SGD step at each of many rates, low to high.

The loss falls while the rate is useful and turns up once it is too large; a
rate a little below that turn is a good one to train with.
"""
import io
import math
import sys
import warnings

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.train --lr-sweep", file=sys.stderr)
    sys.exit(2)

from . import model, plots, shell
from .train_flags import as_flags
from .atomic import write_whole
from .cli import UsageError


def lr_sweep(params, X, Y, steps, batch_size, seed):
    """One step at each of `steps` rates spaced evenly in exponent from 1e-3 to 1.

    Returns (exponents, losses); the losses after the rate blew up stay NaN.
    """
    rng = np.random.default_rng([seed, 1])
    lre = exponents(steps)
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


def sweep_into(out, params, X, Y, cfg):
    """lr_sweep with cfg's steps, batch and seed, reported into the folder `out` (report_sweep). A stop
    signal ends it with a line saying why nothing was written: the table needs every rate."""
    try:
        lre, losses = lr_sweep(params, X, Y, cfg.steps, cfg.batch_size, cfg.seed)
    except KeyboardInterrupt:
        print("interrupted before the sweep's last rate: its table needs every one, so nothing was written",
              file=sys.stderr)
        raise
    report_sweep(lre, losses, out, cfg.batch_size, len(Y), model.num_params(params), cfg)


def exponents(steps):
    """The exponents of a sweep's `steps` rates: evenly spaced from -3 to 0."""
    return np.linspace(-3, 0, steps)


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


HEADER = "step,lr,loss"  # the first line of lr_sweep.csv

MANY_PASSES = 5  # passes over the training set past which a sweep's losses are partly memorisation...
FEW_EXAMPLES = 10  # ...when the training set has fewer examples than this many times the parameters


def training_command(cfg, rate):
    """The command that trains the sweep's model (cfg) at `rate`: the sweep's settings that are not the
    defaults, but its --steps, which were the sweep's and not a training's, and --lr. (The sweep takes no
    flag of the training's own: train_flags refuses them.)"""
    return shell.join(["python", "-m", "mlp_lm.train", *as_flags(cfg, ("steps", "lr")), "--lr", f"{rate:.2g}"])


def report_sweep(lre, losses, out, batch_size=None, n_train=None, n_params=None, cfg=None):
    """Print the sweep's table and suggestion; write lr_sweep.csv (and lr_sweep.png with matplotlib) to out.
    With batch_size, n_train (training examples) and n_params, warn when the sweep went over a training
    set many times that the model is large enough to learn by heart. With cfg, the sweep's settings, a
    suggested rate between the sweep's ends comes with the command that trains at it."""
    rows, best = sweep_table(lre, losses)
    print(f"learning-rate sweep: {len(lre)} steps, one rate each, from 1e-3 to 1")
    print(f"{'exponent':>15}  {'rate':>7}  {'mean loss':>9}")
    for lo, hi, rate, mean in rows:
        print(f"{lo:6.2f} .. {hi:5.2f}  {rate:7.4f}  {mean:9.4f}")
    if best is None:
        print("every rate diverged: check the data and the model size")
    else:
        print(f"suggested rate: {best[2]:.2g} (lowest mean loss); " + (
            "the loss never turned up, so this is the edge of the sweep, not a choice: try larger rates than 1 in "
            "short runs (--lr 2, 5 with --steps 2000) and keep the largest that trains steadily"
            if best is rows[-1] else
            "the loss was lowest at the sweep's smallest rates: try rates below 1e-3 in short runs"
            if best is rows[0] else "rates just below the point where the loss turns up are a safe choice"))
        if cfg is not None and best is not rows[0] and best is not rows[-1]:
            print(f"train at it: {training_command(cfg, best[2])}")
    passes = len(lre) * batch_size / n_train if batch_size and n_train else 0
    if passes >= MANY_PASSES and n_train < FEW_EXAMPLES * (n_params or 0):
        print(f"note: the sweep's {len(lre):,} steps of {batch_size:,} examples went {passes:.0f} times over the "
              f"{n_train:,} training examples, few enough for the model's {n_params:,} parameters to learn by "
              f"heart, so its losses show that too: check the rate on the dev loss of a short run before you trust it",
              file=sys.stderr)
    try:
        (out / "lr_sweep.png").unlink(missing_ok=True)  # an earlier sweep's picture: never left beside this table
    except OSError:
        pass
    table = io.StringIO()  # written whole or not at all, as the run's files are
    np.savetxt(table, np.column_stack([np.arange(1, len(lre) + 1), 10**lre, losses]),
               delimiter=",", header=HEADER, comments="", fmt=["%d", "%.6g", "%.6f"])
    write_whole(out / "lr_sweep.csv", table.getvalue().encode())
    png = out / "lr_sweep.png"
    drawn, no_picture, stop, _ = plots.draw(
        [(png, lambda plt, path: plots.plot_lr_sweep(plt, lre, losses, path, rows, best[2] if best else None))]
        if np.isfinite(losses).any() else [], "the table")  # every rate diverged (said above): no picture of nothing
    print(f"wrote {shell.shown(out / 'lr_sweep.csv')}" + (f" and {png}" if drawn else f" ({no_picture})" if no_picture else ""))
    if stop:
        raise stop


def read_table(path):
    """(exponents, losses) of the sweep whose table report_sweep wrote to `path` (python -m mlp_lm.draw reads it
    back): the exponents the sweep's own, the losses the table's, to its six decimals. Not such a table is a
    UsageError in one line."""
    bad = f"{path} is not a table python -m mlp_lm.train --lr-sweep wrote"
    if path.exists() and not path.is_file():  # a FIFO would be waited on forever
        raise UsageError(f"{bad} (not a regular file); run the sweep again")
    try:
        with open(path, encoding="utf-8") as f:
            if f.readline().rstrip("\r\n") != HEADER:
                raise UsageError(f"{bad} (its first line is not {HEADER}); run the sweep again")
            with warnings.catch_warnings():  # numpy's warning of a table with no rows: said below, in one line
                warnings.simplefilter("ignore")
                table = np.loadtxt(f, delimiter=",", ndmin=2, dtype=np.float64)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"{bad} ({plots.reason(e)}); run the sweep again") from None
    if table.shape[1:] != (3,) or len(table) < 1:
        raise UsageError(f"{bad} (it has no rows of three numbers); run the sweep again")
    lre = exponents(len(table))
    if not (np.array_equal(table[:, 0], np.arange(1, len(table) + 1))
            and np.allclose(table[:, 1], 10**lre, rtol=1e-5, atol=0)):  # written with six significant digits
        raise UsageError(f"{bad} (its steps or rates are not the sweep's, evenly spaced in exponent from 1e-3 to 1); "
                         f"run the sweep again")
    losses = table[:, 2]
    if np.any(losses < 0) or np.any(np.isinf(losses)):  # NaN is a rate past blowing up, as the sweep leaves it
        raise UsageError(f"{bad} (a loss that is negative or infinite); run the sweep again")
    blown = np.isnan(losses)
    if blown.any() and not blown[blown.argmax():].all():  # the sweep stops at its first blow-up: every rate after it is NaN too
        raise UsageError(f"{bad} (a loss after a NaN, where the sweep stops at a blow-up and leaves every larger rate "
                         f"NaN); run the sweep again")
    return lre, losses

if __name__ == "__main__":  # a library module, not a command: say where the command is, as cli.run would
    from .cli import EXIT_BAD_INPUT
    print("python -m mlp_lm.sweep: error: this module is not a command; the learning-rate sweep is "
          "python -m mlp_lm.train --lr-sweep (see python -m mlp_lm.train --help)", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)
