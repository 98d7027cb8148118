"""Which run a command given none takes (sample's model, draw's folder): the newest under the checkout's
runs/, and what it is when it is not a finished run. The run folders themselves are runs.py's.
"""
from pathlib import Path

import numpy as np

from . import atomic, checkpoint
from .cli import UsageError
from .runlock import held
from .runs import kept_apart, resume_command
from .wordfile import in_checkout


def newest(runs, names=("model.npz",)):
    """The most recently written model.npz (or other file of `names` a run writes, such as a sweep's lr_sweep.csv)
    in the run folders under `runs` (two levels deep), or None."""
    for journal in [*Path(runs).glob(f"*/{atomic.JOURNAL}"), *Path(runs).glob(f"*/*/{atomic.JOURNAL}")]:
        atomic.recover(journal.parent)  # a save cut short after its commit counts once finished
    found = [p for name in names for pattern in (f"*/{name}", f"*/*/{name}") for p in Path(runs).glob(pattern)
             if p.is_file()
             and not (kept_apart(p.parent.name) and p.parent.parent != Path(runs))  # a run's side folder
             and not any(part.startswith(".") for part in p.relative_to(runs).parts)]  # results' set aside
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def newest_model(otherwise, sweeps=False):
    """The newest model.npz under the checkout's runs/ (newest), for a command given none; with sweeps, the newest
    of those and of the learning-rate sweeps' tables (lr_sweep.csv: draw's, whose pictures come of either). A
    UsageError if there is none, saying to train one or to pass `otherwise` ("--checkpoint PATH")."""
    runs = in_checkout("runs")
    found = newest(runs, ("model.npz", "lr_sweep.csv") if sweeps else ("model.npz",))
    if found is None:
        # the only runs there have not saved yet (a hostile tester's, told to "train one"): results' too, a level down
        training = next((f for f in sorted([*runs.glob("*/"), *runs.glob("*/*/")]) if held(f)), None)
        if training is not None:
            raise UsageError(f"no trained model under {runs} yet: a training is writing to {training} and has "
                             f"saved nothing there so far; wait for it, or pass {otherwise}")
        raise UsageError(f"no trained model under {runs}: train one with `python -m mlp_lm.train`, "
                         f"or pass {otherwise}")
    return found


def newest_run(otherwise):
    """The folder of the newest run under the checkout's runs/, a training's or a sweep's (newest_model)."""
    return newest_model(otherwise, sweeps=True).parent


def unfinished(model_path, config):
    """What the run saved at `model_path` is when it has not taken all its steps, as a phrase: a run stopped
    part-way, with the command that finishes it, or a snapshot of a run still training (its folder's lock held);
    None for a finished run (steps_done)."""
    done = steps_done(model_path, config)
    if done is None:
        return None
    if held(Path(model_path).parent):  # saved every few minutes as it trains: nothing is stopped, nothing to resume
        return f"a snapshot, at step {done:,} of {config['steps']:,}, of a run still training"
    finish = resume_command(Path(model_path).parent)
    return f"a run stopped at step {done:,} of {config['steps']:,}, which {finish} finishes"


def steps_done(model_path, config):
    """How many steps the run saved at `model_path` took, where that is fewer than its config's (a run stopped
    part-way, to be resumed); None for a complete run, a model saved without a training state, or a state that
    cannot be read (which resume would say)."""
    try:
        state = checkpoint.load_state(model_path)
        step = state.get("step") if state is not None else None
        done = int(step) if isinstance(step, np.ndarray) and step.shape == () and step.dtype.kind in "iu" else None
    except (checkpoint.CheckpointError, OSError, ValueError, OverflowError):
        return None
    steps = config.get("steps")
    return done if isinstance(steps, int) and done is not None and 0 < done < steps else None
