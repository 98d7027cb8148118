"""How much room a run's files need: the bytes each takes, whether this process may write files that
large (ulimit -f), and, for a learning-rate sweep, whether the disk under its folder has the room.
runs.check_space asks the same of a run's folder before training, with these estimates."""
import shutil

import numpy as np

from . import plots
from .cli import UsageError
from .runtime import gib
from .trainer import block_rows


def bytes_to_save(cfg, n_params):
    """About how many bytes a run's files take: model.npz holds the parameters twice (the model, and
    the raw ones of the training state), the optimiser's moments, the weight average, a block of
    minibatch indices and the loss of every step; loss.csv has a line a step; metrics.json is small.
    With --keep-best the state also holds the best dev evaluation's model; with matplotlib, the pictures."""
    return sum(file_sizes(cfg, n_params))


def file_sizes(cfg, n_params):
    """About how many bytes each of a run's files takes (bytes_to_save): model.npz (with 64 KB for its
    headers, configuration, random streams' states and vocabulary), loss.csv, and the rest."""
    copies = 2 + (2 if cfg.optimizer == "adamw" else 0) + (1 if cfg.ema else 0) + (1 if cfg.keep_best else 0)
    evaluations = cfg.steps // cfg.eval_every + 1 if cfg.eval_every else 1  # (step, dev loss) pairs, 16 bytes each
    npz = (n_params * copies * np.dtype(cfg.dtype).itemsize + 8 * block_rows(cfg.batch_size) * cfg.batch_size
           + 8 * cfg.steps + 16 * evaluations + 2**16)
    csv = (len(str(cfg.steps)) + 12) * cfg.steps + 10 * evaluations  # a line a step, and a dev loss on some
    return npz, csv, 2**12 + (plots.PICTURE_BYTES if plots.available() else 0)


def file_size_limit():
    """The largest file this process may write, in bytes (ulimit -f: RLIMIT_FSIZE), or None for no limit.
    Past it a write fails with "File too large", however much room the disk has."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):  # not on this system
        return None
    return None if limit == resource.RLIM_INFINITY else limit


def check_file_size_limit(need, what, resuming=False):
    """Refuse, before the work, files of `need` bytes that this process may not write (ulimit -f)."""
    limit = file_size_limit()
    if limit is not None and need > limit:
        raise UsageError(f"this process may write files of at most {gib(limit, 1)} (ulimit -f), and {what} "
                         f"needs about {gib(need, 1)}; raise the limit (ulimit -f unlimited) "
                         + ("then --resume again" if resuming else "or train fewer --steps or a smaller model"))


def check_sweep_space(out, steps):
    """Refuse, before it starts, a learning-rate sweep whose table (and picture) the disk under `out`
    cannot hold: on a full disk it ran to the end and then lost its work writing the table."""
    need = 40 * steps + 2**16 + (plots.PICTURE_BYTES if plots.available() else 0)
    check_file_size_limit(need, "the sweep's table and picture")
    free = shutil.disk_usage(out).free
    if free < need:
        raise UsageError(f"{out} has {gib(free, 1)} free, and the sweep's table and picture need about "
                         f"{gib(need, 1)}; free some space or pass another --out")
