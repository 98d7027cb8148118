"""Run folders: where a training writes, who is writing there, and where a stopped run resumes.

A run folder holds model.npz (with the training state to resume from), metrics.json and
loss.csv. Without --out each run gets a new folder; a lock file keeps two trainings out of
one folder.
"""
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint, optim
from .cli import UsageError
from .data import in_checkout
from .trainer import Config


def prepare_out(out):
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output directory {out}: {e.strerror}; pass a writable --out") from None
    return out


def default_out(data):
    """runs/<data file stem>, or the first of runs/<stem>-2, -3, ... that holds no model and no
    running training: a second run never replaces the first."""
    base = in_checkout(Path("runs") / Path(data).stem)
    candidate, n = base, 1
    checkpoint.recover(candidate)  # a save cut short after its commit is a model too
    while (candidate / "model.npz").exists() or lock_holder(candidate) is not None:
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
        checkpoint.recover(candidate)
    return candidate


def lock_holder(out):
    """The pid of a live process that holds out/.lock, or None."""
    try:
        pid = int((Path(out) / LOCK).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:  # a pid reused by another program since the lock was left is not a training
        if b"mlp_lm" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    except OSError:
        pass  # no /proc (or gone): fall back to whether the pid is alive
    try:
        os.kill(pid, 0)  # signal 0: is it alive?
    except ProcessLookupError:
        return None  # a stale lock from a run that was killed
    except PermissionError:
        pass  # alive, someone else's
    return pid


LOCK = ".lock"  # holds the pid of the training writing to a run folder


class RunLock:
    """out/.lock for the duration of a training: a second training into the same folder refuses."""

    def __init__(self, out):
        self.path = Path(out) / LOCK

    def __enter__(self):
        holder = lock_holder(self.path.parent)
        if holder is not None:
            raise UsageError(f"another training (process {holder}) is writing to {self.path.parent}; "
                             f"wait for it to finish or pass another --out")
        try:
            self.path.write_text(f"{os.getpid()}\n")
        except OSError as e:
            raise UsageError(f"cannot write to {self.path.parent}: {e.strerror}; pass a writable --out") from None
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def resume_point(out):
    """(Config, preset, (state, losses so far, dev losses so far, data sha256)) of the run in `out`,
    or None for the last item when that run is already complete."""
    path = Path(out) / "model.npz"
    _, _, config = checkpoint.load(path)
    state = checkpoint.load_state(path)
    if state is None or "step" not in state:
        raise UsageError(f"{path} holds no training state to resume from (it was saved before resuming "
                         f"existed); start a new run")
    damaged = f"{path} has a damaged training state or config"
    try:
        cfg = Config(**{f.name: config[f.name] for f in fields(Config)})
        for f in fields(Config):  # each setting of the type the run would have given it
            value, default = getattr(cfg, f.name), getattr(Config, f.name)
            if isinstance(value, bool) != isinstance(default, bool) or not (
                    isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))):
                raise TypeError(f"{f.name} is {value!r}")
        if not 0 < cfg.steps <= 10**9 or cfg.optimizer not in ("sgd", "adamw") or cfg.schedule not in optim.SCHEDULES \
                or cfg.dtype not in ("float32", "float64"):
            raise ValueError("a setting is out of range")
        done = int(state.pop("step"))
        history = np.asarray(state.pop("losses"), dtype=np.float64)[:done]
        devs = {int(k): float(v) for k, v in np.asarray(state.pop("devs"), dtype=np.float64).reshape(-1, 2)}
        if not 0 < done or len(history) != done or not np.all(np.isfinite(history)):
            raise ValueError(f"step {done} with {len(history)} losses")
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{damaged} ({e}); start a new run") from None
    if done >= cfg.steps:
        print(f"the run in {out} is complete ({done} of {cfg.steps} steps): nothing to resume")
        return cfg, config.get("preset", "lecture"), None
    print(f"resuming the run in {out} at step {done} of {cfg.steps}")
    return cfg, config.get("preset", "lecture"), (state, history, devs, config.get("data_sha256"))
