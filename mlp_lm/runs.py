"""Run folders: where a training writes, who is writing there, and where a stopped run resumes.

A run folder holds model.npz (with the training state to resume from), metrics.json and
loss.csv. Without --out each run gets a new folder; a lock file keeps two trainings out of
one folder.
"""
import itertools
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint
from .cli import UsageError
from .data import in_checkout
from .trainer import Config, config_problem


def prepare_out(out):
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # our own: two runs starting at once do not collide
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output directory {out}: {e.strerror}; pass a writable --out") from None
    return out


def claim_default_out(data):
    """A new run folder for `data`, created and locked: runs/<data file stem>, or the first of
    runs/<stem>-2, -3, ... that holds no model and that no other training holds. A second run
    never replaces the first, and two started at once get two folders. Returns (folder, lock held)."""
    base = in_checkout(Path("runs") / Path(data).stem)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if candidate.exists() and not candidate.is_dir():  # a file of that name: not ours to touch
            continue
        checkpoint.recover(candidate)  # a save cut short after its commit is a model too
        if (candidate / "model.npz").exists():
            continue
        out = prepare_out(candidate)
        lock = RunLock(out)
        try:
            lock.__enter__()
        except LockBusy:
            continue
        if (out / "model.npz").exists():  # another run finished there between our look and the lock
            lock.__exit__()
            continue
        return out, lock


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


class LockBusy(UsageError):
    """Another training holds the folder."""


class RunLock:
    """out/.lock for the duration of a training: a second training into the same folder refuses.

    The lock file is created with O_EXCL, which the file system does atomically: of two
    trainings starting at the same moment, exactly one creates it. A lock left by a run that
    was killed (its process is gone) is removed and taken.
    """

    def __init__(self, out):
        self.path = Path(out) / LOCK
        self.held = False

    def __enter__(self):
        if self.held:  # taken already (claim_default_out takes it before handing the folder over)
            return self
        for _ in range(2):  # the second try follows the removal of a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = lock_holder(self.path.parent)
                if holder is not None:
                    raise LockBusy(f"another training (process {holder}) is writing to {self.path.parent}; "
                                   f"wait for it to finish or pass another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as e:
                raise UsageError(f"cannot write to {self.path.parent}: {e.strerror}; pass a writable --out") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        raise LockBusy(f"another training is starting in {self.path.parent}; wait for it or pass another --out")

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


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
        problem = config_problem(cfg)
        if problem:
            raise ValueError(problem)
        done = int(state.pop("step"))
        history = np.asarray(state.pop("losses"), dtype=np.float64)[:done]
        devs = {int(k): float(v) for k, v in np.asarray(state.pop("devs"), dtype=np.float64).reshape(-1, 2)}
        if not 0 < done or len(history) != done or not np.all(np.isfinite(history)):
            raise ValueError(f"step {done} with {len(history)} losses")
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{damaged} ({e}); start a new run") from None
    evaluated = bool(state.pop("evaluated", True))  # saved since a stopped final evaluation can be redone
    if done >= cfg.steps and evaluated:
        print(f"the run in {out} is complete ({done} of {cfg.steps} steps): nothing to resume")
        return cfg, config.get("preset", "lecture"), None
    if done >= cfg.steps:
        print(f"the run in {out} trained all {done} steps but its final evaluation was cut short: evaluating it")
        return cfg, config.get("preset", "lecture"), (state, history, devs, config.get("data_sha256"))
    print(f"resuming the run in {out} at step {done} of {cfg.steps}")
    return cfg, config.get("preset", "lecture"), (state, history, devs, config.get("data_sha256"))
