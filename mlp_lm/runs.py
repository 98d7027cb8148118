"""Run folders: where a training writes, who is writing there, what it writes, and where a stopped run resumes.

A run folder holds model.npz (with the training state to resume from), metrics.json and
loss.csv. Without --out each run gets a new folder; a lock file keeps two trainings out of
one folder.
"""
import fcntl
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint
from .cli import UsageError
from .data import in_checkout
from .trainer import BLOCK, PRESETS, Config, config_problem


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


def bytes_to_save(cfg, n_params):
    """About how many bytes a run's files take: model.npz holds the parameters twice (the model, and
    the raw ones of the training state), the optimiser's moments, the weight average, a block of
    minibatch indices and the loss of every step; loss.csv has a line a step; metrics.json is small."""
    copies = 2 + (2 if cfg.optimizer == "adamw" else 0) + (1 if cfg.ema else 0)
    size = n_params * copies * np.dtype(cfg.dtype).itemsize + 8 * BLOCK * cfg.batch_size + 8 * cfg.steps
    return size + (len(str(cfg.steps)) + 12) * cfg.steps + 2**16


def check_space(out, cfg, n_params):
    """Refuse, before training, a run whose files the disk under `out` cannot hold."""
    need = bytes_to_save(cfg, n_params)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UsageError(f"{out} has {free / 2**20:.1f} MB free, and this run's files need about "
                         f"{need / 2**20:.1f} MB; free some space or pass another --out")


def save_run_or_rescue(out, *run, unusable=None, unfinished=False):
    """save_run(out, *run); if `out` cannot take it after all (the disk filled during training, the
    folder went away), save it in a new folder under the system's temporary directory instead and
    say where, so the training is not lost. If that fails too, say the run is lost.
    unusable: why `out` could not even be made; the temporary directory is then the only place tried.
    unfinished: a stopped run, so the message says how to continue it where it was saved."""
    try:
        if unusable:
            raise checkpoint.CheckpointError(unusable)
        save_run(out, *run)
    except checkpoint.CheckpointError as e:
        rescue = None
        try:
            rescue = Path(tempfile.mkdtemp(prefix="mlp_lm-rescued-"))
            save_run(rescue, *run)
        except (OSError, checkpoint.CheckpointError):
            if rescue is not None:
                shutil.rmtree(rescue, ignore_errors=True)
            raise checkpoint.CheckpointError(f"{e}; nor could it be saved under {tempfile.gettempdir()}, so this "
                                             f"run is lost: free some space before training again") from None
        then = f"; to continue it: python -m mlp_lm.train --resume --out {rescue}" if unfinished else ""
        raise UsageError(f"{e}; the run is saved in {rescue} instead: move that folder where you want it"
                         f"{then}") from None


def claim_default_out(data):
    """A new run folder for `data`, created and locked: runs/<data file stem>, or the first of
    runs/<stem>-2, -3, ... that holds no model and that no other training holds. A second run
    never replaces the first, and two started at once get two folders. Returns (folder, lock held)."""
    return claim_fresh(in_checkout(Path("runs") / Path(data).stem))


def claim_fresh(base):
    """The first of base, base-2, base-3, ... that is empty (but for a lock file) and that no
    other training holds, created and locked. Returns (folder, lock held)."""
    base = Path(base)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if candidate.is_symlink() or (candidate.exists() and not candidate.is_dir()):  # not ours to touch
            continue
        checkpoint.recover(candidate)  # a save cut short after its commit is a model too
        if candidate.is_dir() and any(p.name != LOCK for p in candidate.iterdir()):
            continue  # a model, a sweep's table, or anything else someone put there: not a new folder
        out = prepare_out(candidate)
        lock = RunLock(out)
        try:
            lock.__enter__()
        except LockBusy:
            continue
        if any(p.name != LOCK for p in out.iterdir()):  # another run wrote there between our look and the lock
            lock.__exit__()
            continue
        return out, lock


LOCK = ".lock"  # holds the pid of the training writing to a run folder


class LockBusy(UsageError):
    """Another training holds the folder."""


class RunLock:
    """out/.lock, held for the duration of a training: a second training into the same folder refuses.

    The lock is the kernel's (flock) on that file: of two trainings starting at the same moment
    exactly one gets it, and the kernel lets go of it when its process ends, however it ends,
    so a killed run leaves no lock behind. The file holds the pid, for the refusal's message.
    """

    def __init__(self, out):
        self.path = Path(out) / LOCK
        self.fd = None

    def __enter__(self):
        if self.fd is not None:  # taken already (claim_default_out takes it before handing the folder over)
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as e:
                raise UsageError(f"cannot write to {self.path.parent}: {e.strerror}; make it writable or use "
                                 f"another folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise LockBusy(f"another training{f' (process {pid})' if pid.isdigit() else ''} is writing to "
                               f"{self.path.parent}; wait for it to finish or pass another --out") from None
            try:  # the file we locked is still the one at the path (its last holder removes it on leaving)
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the pid is only for another run's message, the lock holds without it
            pass
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still holding it, so no one locks a file about to go
            except OSError:  # the folder turned read-only: the file stays, the lock goes with the descriptor
                pass
            os.close(self.fd)
            self.fd = None


def loss_csv(losses, devs):
    lines = ["step,train_loss,dev_loss"]
    lines += [f"{i + 1},{loss:.6f},{devs[i + 1]:.6f}" if i + 1 in devs else f"{i + 1},{loss:.6f},"
              for i, loss in enumerate(losses)]
    return "\n".join(lines) + "\n"


SAVED = ("loss.csv", "metrics.json", "model.npz")  # what save_run writes


def save_run(out, params, vocab, config, state, summary, losses, devs):
    """Write a run's files: model.npz (with the training state to resume from), metrics.json
    (`summary`) and loss.csv. Each is written in full under a temporary name first, then all are
    moved into place behind a journal (checkpoint.write_atomic): the folder holds this run or the
    previous one, never a mix."""
    out = Path(out)
    writers = {"loss.csv": lambda f: f.write(loss_csv(losses, devs).encode()),
               "metrics.json": lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()),
               "model.npz": checkpoint.writer(params, vocab, config, state)}
    checkpoint.write_atomic([(out / name, write) for name, write in writers.items()])
    for name in ("lr_sweep.csv", "lr_sweep.png", "loss.png", "embedding.png"):  # an earlier run's, not this one's
        try:
            (out / name).unlink(missing_ok=True)
        except OSError:  # a folder of that name, say: not ours, and the run is saved
            pass


def resume_point(out):
    """(Config, preset, (state, losses so far, dev losses so far, data sha256), what resuming will do)
    of the run in `out`; the third item is None when that run is already complete."""
    path = Path(out) / "model.npz"
    try:
        _, _, config = checkpoint.load(path)
    except checkpoint.CheckpointError:
        if not path.exists():  # even after load finished any save cut short: no run was ever saved here
            raise UsageError(f"nothing to resume in {out}: no run was saved there (a run is saved when it ends "
                             f"or is stopped); start one without --resume") from None
        raise
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
        if not isinstance(config.get("data_sha256"), str):  # every run saves it: resume checks the data against it
            raise ValueError("it does not say which data it was trained on (data_sha256)")
        step = state.pop("step")
        if step.shape != () or step.dtype.kind not in "iu":
            raise ValueError(f"the step {step!r} is not a whole number")
        done = int(step)
        history, evals = state.pop("losses"), state.pop("devs")
        if history.ndim != 1 or history.dtype.kind != "f" or evals.dtype.kind != "f" or evals.ndim != 2 or (
                evals.size and evals.shape[1] != 2):
            raise ValueError(f"its losses ({history.dtype} {history.shape}) and dev losses ({evals.dtype} "
                             f"{evals.shape}) are not what a run saves")
        history, evals = history[:done].astype(np.float64), evals.astype(np.float64).reshape(-1, 2)
        if not 0 < done <= cfg.steps or len(history) != done or not np.all(np.isfinite(history) & (history >= 0)):
            raise ValueError(f"step {done} of {cfg.steps} with {len(history)} losses, or losses that are not losses")
        if not np.all((evals[:, 0] == np.round(evals[:, 0])) & (1 <= evals[:, 0]) & (evals[:, 0] <= done)):
            raise ValueError("the steps of the dev evaluations are not steps of this run")
        if len(set(evals[:, 0])) != len(evals) or not np.all(np.isfinite(evals[:, 1]) & (evals[:, 1] >= 0)):
            raise ValueError("its dev losses repeat a step or are not losses")
        devs = {int(k): float(v) for k, v in evals}
        evaluated = state.pop("evaluated", np.array(True))  # saved since a stopped final evaluation can be redone
        if evaluated.shape != () or evaluated.dtype != bool:
            raise ValueError(f"'evaluated' is {evaluated.tolist()!r}, not true or false")
        evaluated = bool(evaluated)
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{damaged} ({e}); start a new run") from None
    preset = config.get("preset", "lecture")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise UsageError(f"{damaged} (preset {preset!r}); start a new run")
    if done >= cfg.steps and evaluated:
        return cfg, preset, None, f"the run in {out} is complete ({done} of {cfg.steps} steps): nothing to resume"
    resumed = (state, history, devs, config.get("data_sha256"))
    if done >= cfg.steps:
        return cfg, preset, resumed, (f"the run in {out} trained all {done} steps but its final evaluation "
                                      f"was cut short: evaluating it")
    return cfg, preset, resumed, f"resuming the run in {out} at step {done} of {cfg.steps}"
