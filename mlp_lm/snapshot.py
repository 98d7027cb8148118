"""What a run saves, and saving it while it trains.

run_record builds the files' contents (config, metrics, training state) for train's save at the end.
Snapshots writes the same, as a stopped run's, every SNAPSHOT_SECONDS while the run trains: what a
Ctrl-C would have saved then. A kill no program can catch (SIGKILL, the out-of-memory killer, a power
cut) then costs the minutes since the last snapshot, not the run, and `--resume` continues from it.
"""
import os
import sys
import time
from contextlib import suppress
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np

from . import checkpoint, model, runs, shell
from .cli import UsageError, line_break
from .data import SPLIT_SEED
from .runlock import FolderHold
from .sampling import Novelty, generate, sample_length

SNAPSHOT_SECONDS = 300.0  # at most this much training lost to a kill (a snapshot near the end of the best preset: 0.24 s)


def run_record(cfg, preset, splits, trainer, params, losses, devs, result, *, seconds, ran, interrupted,
               diverged_at=None, best_step=None, timing=(0.0, 0)):
    """(config, metrics.json's summary, training state, the samples' Novelty) of a run that has taken
    len(losses) steps (`ran` counting steps after a divergence's kept state), this command's in `seconds`,
    saving `params` with its final losses `result` ({} unevaluated).
    timing: (the seconds of the commands before this one, the step from which they count: 0, or for a run
    resumed from a state saved before states kept their time, the step it was resumed at)."""
    done = len(losses)
    novelty = Novelty(split=splits.items)  # makemore's check that the model does not just repeat its data
    config = {**asdict(cfg), "data": str(Path(cfg.data).resolve()), "vocab_size": len(splits.vocab),
              "preset": preset, "data_sha256": splits.sha256, "split_seed": SPLIT_SEED,
              # sample's default length comes from it, the same whether or not the data can still be read
              "longest_item": novelty.longest}
    if diverged_at is not None:  # resume would replay the steps that went wrong: resume.resume_point refuses the run
        config["diverged_at"] = diverged_at
    try:
        samples, ended = generate(partial(model.next_probs, params), splits.vocab, cfg.block_size, 10,
                                  np.random.default_rng([cfg.seed, 2]), with_ended=True,
                                  max_length=sample_length(novelty.longest))
    except FloatingPointError:  # an unevaluated model whose logits overflow: save it all the same
        samples, ended = [], []
    novelty.add(samples, ended)
    earlier, since = timing
    total = earlier + seconds  # the run's training time, over every command that trained it
    summary = {**result, "evaluated": bool(result), "steps": done, "train_seconds": round(total, 3),
               # of the steps timed: none for a run resumed only to be evaluated, from a state without its time
               "steps_per_second": round((ran - since) / total, 1) if total and ran > since else None,
               **({"train_seconds_from_step": since + 1} if since else {}),  # the steps before it: time unknown
               "params": model.num_params(params), "interrupted": interrupted, "diverged": diverged_at is not None,
               **({"best_step": best_step} if cfg.keep_best else {}),
               "config": config, "samples": samples, "samples_ended": ended, **novelty.fields()}
    state = {**trainer.state(copy=False), "step": np.array(done), "losses": losses,
             "threads": np.array(trainer.fixed_threads), "seconds": np.array(float(total)),
             "timed_from": np.array(since),
             "evaluated": np.array(bool(result)), "devs": np.array(sorted(devs.items()), dtype=np.float64).reshape(-1, 2)}
    return config, summary, state, novelty


def snapshots_for(out, cfg, preset, splits, first, room, timing=(0.0, 0), hold=None, aside=False):
    """The Snapshots of a run into `out` that has taken `first` steps before this command (a resumed run's),
    or None. Snapshots go where the run's files alone are: a resumed run's own folder, or one holding none of a
    run's files; `aside` (`out` holds an earlier run's files, or a user's loss.csv, which a --force run replaces
    only whole), to a side folder of their own. And only with `room` (runs.check_space) for two saves, or a
    warning that a kill would lose the run. hold: the run's runlock.FolderHold: a folder removed or replaced
    meanwhile is written no more."""
    if not room:
        print(f"warning: {shell.shown(out)} has room for this run's files but not for its snapshots as well: a kill it cannot "
              f"catch (kill -9, a power cut) would lose it", file=sys.stderr)
        return None
    return Snapshots(out, cfg, preset, splits, first, timing, hold, aside)


class Snapshots:
    """Saves a training run into `out` as a stopped one every SNAPSHOT_SECONDS: due() between steps says
    when, save(...) writes it. A snapshot that cannot be written (a full disk) is said once and training
    goes on: the save at the end tries again, and finds another place if it must.

    aside: `out` holds an earlier run's files, which this run may replace only whole. Its snapshots then go
    to a side folder, out/interrupted (or interrupted-2, ...: runs.claim_fresh), claimed at the first of them;
    a stop signal's save goes there too (side_folder()), and once the run is saved whole elsewhere the side
    folder goes (saved_whole()). A kill leaves it, and `--resume --out out` points at it (resume.py)."""

    def __init__(self, out, cfg, preset, splits, first, timing=(0.0, 0), hold=None, aside=False):
        self.out, self.cfg, self.preset, self.splits, self.first = Path(out), cfg, preset, splits, first
        self.hold = hold
        self.timing = timing  # run_record's: the time of the commands before this one
        self.start = self.last = time.monotonic()
        self.failed, self.step = False, 0  # step: that of the last snapshot written, 0 for none
        self.base, self.base_hold, self.aside, self.lock = self.out, hold, aside, None  # lock: the side folder's
        self.made = False  # whether this run made the side folder (else it claimed an empty one that was there)

    def due(self):
        return time.monotonic() - self.last >= SNAPSHOT_SECONDS

    def save(self, trainer, losses, devs):
        """Write what a Ctrl-C after these len(losses) steps would: the kept model (--keep-best's best
        dev evaluation's, else the model as it is), unevaluated, with the state to resume from."""
        best_step, params = trainer.best or (None, trainer.evaluated)
        seconds = time.monotonic() - self.start
        config, summary, state, _ = run_record(self.cfg, self.preset, self.splits, trainer, params, losses, devs, {},
                                               seconds=seconds, ran=len(losses), interrupted=True,
                                               best_step=best_step, timing=self.timing)
        try:
            if self.lock is not None and self.lost() and not self.base_lost():  # its side folder removed: another
                self.lock.__exit__()
                self.out, self.hold, self.lock, self.step = self.base, self.base_hold, None, 0
            if lost := self.lost():  # it may be another run's now
                self.step = 0  # (and the snapshot made there is gone with it)
                raise checkpoint.CheckpointError(lost)
            if self.aside and self.lock is None:  # the first snapshot: its side folder, in the folder held
                there = set(os.listdir(self.base))  # an empty folder of the user's may be claimed: never removed
                self.out, self.lock = runs.claim_fresh(self.base / "interrupted")
                self.hold, self.made = FolderHold(self.out), self.out.name not in there
            runs.save_run(self.out, params, self.splits.vocab, config, state, summary, losses, devs)
            self.step = len(losses)
            if self.hold is not None:
                self.hold.saved()  # the model.npz there is this run's own
        except (checkpoint.CheckpointError, UsageError, OSError) as e:
            if not self.failed:
                print(f"{line_break()}warning: cannot save a snapshot of the run in {shell.shown(self.out)} ({e}); training goes on, and "
                      f"the run is saved when it ends", file=sys.stderr)
            self.failed = True
        self.last = time.monotonic()

    def lost(self):
        return self.hold.lost() if self.hold is not None else None

    def base_lost(self):
        return self.base_hold.lost() if self.base_hold is not None else None

    def diverged(self):
        """The run blew up with nothing worth saving: a new run's snapshots go (resuming them would only replay
        the steps that went wrong); a resumed run's folder keeps its last state from before the blow-up."""
        if not self.first:
            self.remove()

    def save_failed(self, e):
        """The error to raise for the run's final save, which failed with `e`: a run lost everywhere (a
        CheckpointError) says where its last snapshot is; one saved whole elsewhere takes that snapshot back."""
        if self.step and isinstance(e, checkpoint.CheckpointError) and not self.lost():
            return checkpoint.CheckpointError(f"{e}; but its snapshot of step {self.step:,} is in {self.out}: "
                                              f"{runs.resume_command(self.out)} goes on from there")
        self.remove()  # an older state left in `out` would only mislead
        return e

    def side_folder(self):
        """(folder, its lock held) of an aside run's snapshots, for a stop signal's save to go to, which then
        holds the lock; or None (no snapshot yet, not aside, or the folder is not this run's any more)."""
        if self.lock is None or self.lost():
            return None
        lock, self.lock = self.lock, None
        return self.out, lock

    def saved_whole(self):
        """The run is saved whole in `out` (or, useless, in a side folder of train's): an aside run's snapshots
        go, with their folder."""
        if self.aside:
            self.remove()

    def remove(self):
        """Take back the snapshots of a run that ends saving nothing (it diverged before any dev evaluation
        worth keeping: resuming them would only replay the steps that went wrong), that was saved whole
        elsewhere (a disk that filled: an older state left here would only mislead), or, aside, saved whole.
        An aside run's side folder goes with them (if it is empty then: never another's files)."""
        mine = not self.lost()  # never another run's files
        if self.step and mine:
            self.step = 0
            for name in ("model.npz", "metrics.json", "loss.csv"):
                try:
                    (self.out / name).unlink(missing_ok=True)
                except OSError:
                    pass
            if self.hold is not None:
                self.hold.saved()  # (no model there now, and by this run's doing)
        if self.lock is not None:
            lock, self.lock = self.lock, None
            lock.__exit__()
        if self.out != self.base and mine and self.made:
            with suppress(OSError):
                self.out.rmdir()  # only if empty
