"""Draw a saved run's pictures again, replacing those in its folder: its loss curve and embedding, or its
learning-rate sweep.

    python -m mlp_lm.draw runs/names

python -m mlp_lm.train draws them as it ends when matplotlib is installed; this draws them again
from what the run saved (model.npz, or a sweep's lr_sweep.csv): after installing matplotlib, after a
drawing that was cut short, or while a run still trains (from its latest snapshot). The pictures go
into the run's folder under the names train gives them, replacing any there (a link in a picture's place is
itself replaced, never written through).
"""
import errno
import sys
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.draw", file=sys.stderr)
    sys.exit(2)

from . import checkpoint, latest, plots, shell
from .cli import ArgumentParser, UsageError, run
from .resume import read_history
from .sweep import read_table, sweep_table

READS = ("model.npz", "lr_sweep.csv")  # what a run's pictures are drawn from; a path to one of them names its folder


def parse_args(argv):
    ap = ArgumentParser(prog="python -m mlp_lm.draw", description=__doc__.split("\n\n")[0])
    ap.add_argument("run", metavar="FOLDER", nargs="?", default=None,
                    help="a run's folder, as python -m mlp_lm.train --out (or --lr-sweep --out) wrote it "
                         "(default: the folder of the newest run under runs/, a training's or a sweep's)")
    return ap.parse_args(argv)


def run_folder(given):
    """The folder whose pictures to draw: `given`, a path to one of the files they are drawn from (its folder),
    or the newest run's; a UsageError if it is none of these."""
    if given is None:
        return latest.newest_run("the folder of a run")
    if given == "":  # Path("") is "."
        raise UsageError("the folder is empty text; pass a run's folder, such as runs/names")
    folder = Path(given)
    if folder.is_file() and folder.name in READS:
        return folder.parent
    if not folder.exists():
        raise UsageError(f"{folder} does not exist" + (" (a link to nothing)" if folder.is_symlink() else "")
                         + "; pass a run's folder, such as runs/names")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; pass the folder of a run, such as runs/names")
    return folder


def loss_history(path, config):
    """(losses, {step: dev loss}, the step of the model --keep-best kept or None) from the training state saved in
    the model.npz at `path`, or None if it saved none (a model saved from Python without one)."""
    state = checkpoint.load_state(path)
    if not {"step", "losses", "devs"} & set(state or ()):  # a Trainer's state saved from Python has no loop's part
        return None
    try:
        steps = config.get("steps")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"its steps are {steps!r}")
        done, losses, devs = read_history(state, steps)
    except KeyError as e:  # some of the loop's part, not all
        raise checkpoint.CheckpointError(f"{path} has a damaged training history (it has no {e.args[0]}), so its "
                                         f"loss curve cannot be drawn; train it again to draw one") from None
    except ValueError as e:
        raise checkpoint.CheckpointError(f"{path} has a damaged training history ({e}), so its loss curve cannot "
                                         f"be drawn; train it again to draw one") from None
    kept = state.get("best_step")
    kept = int(kept) if kept is not None and kept.shape == () and kept.dtype.kind in "iu" and int(kept) in devs else None
    return losses, devs, kept


def main(argv=None):
    args = parse_args(argv)
    folder = run_folder(args.run)
    model, table = folder / "model.npz", folder / "lr_sweep.csv"
    if not model.exists() and not table.exists() and not model.is_symlink():
        inside = sorted(p.parent.name for name in READS for p in folder.glob(f"*/{name}"))
        raise UsageError(f"{folder} holds no run to draw: neither a model.npz nor an lr_sweep.csv " + (
            f"(it holds runs in folders of their own: pass one, such as {shell.path(folder / inside[0])})" if inside else
            f"(python -m mlp_lm.train --out {shell.path(folder)} writes them)"))
    pictures = []  # what the run's files can draw, read (and any damage said) before matplotlib is asked for
    if model.exists() or model.is_symlink():
        params, vocab, config = checkpoint.load(model)
        history = loss_history(model, config)
        if history is None:
            print(f"({model} holds no training history, so no loss curve: a model saved from Python, not by "
                  f"python -m mlp_lm.train)")
        else:
            losses, devs, kept = history
            pictures.append((folder / "loss.png", lambda plt, path: plots.plot_loss(plt, losses, devs, path, kept)))
        pictures.append((folder / "embedding.png", lambda plt, path: plots.plot_embedding(plt, params["C"], vocab, path)))
    if table.exists() or table.is_symlink():
        lre, sweep_losses = read_table(table)
        rows, best = sweep_table(lre, sweep_losses)
        if np.isfinite(sweep_losses).any():
            pictures.append((folder / "lr_sweep.png", lambda plt, path: plots.plot_lr_sweep(
                plt, lre, sweep_losses, path, rows, best[2] if best else None)))
        else:  # as the sweep itself said: nothing to draw
            print(f"(every rate of the sweep in {shell.shown(table)} diverged, so it has no picture)")
    if pictures and not plots.available():
        raise UsageError(f"{plots.hint()}, then run this again")
    drawn, no_pictures, stop, failed = plots.draw(pictures)
    if drawn:
        print(f"drew {', '.join(path.name for path in drawn)} in {shell.shown(folder)}")
    if stop:
        raise stop
    if no_pictures:  # matplotlib is there, but does not load
        raise UsageError(f"{no_pictures}: python -c 'import matplotlib.pyplot' shows why")
    if failed:
        raise UsageError("; ".join(f"could not draw {path} ({why})" for path, why, _ in failed)
                         + f"; the run's own files are untouched: {what_to_do([err for _, _, err in failed])} and run "
                         f"this again")
    return 0


FIXES = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
         errno.EACCES: "let this user write the folder", errno.EPERM: "let this user write the folder",
         errno.EROFS: "copy the run to a folder on a file system mounted for writing"}


def what_to_do(errnos):
    """What to do about pictures that could not be written, by their OSErrors' errno (None for another error):
    else what is in a picture's place is in the way (a folder, a device or a pipe)."""
    return " and ".join(sorted({FIXES.get(err, "move what is in a picture's place away") for err in errnos}))


if __name__ == "__main__":
    run(main, "python -m mlp_lm.draw", needs_stdout=False)
