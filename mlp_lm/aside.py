"""The run folders results retrains: each earlier run is set aside while its retraining runs, and
put back if the retraining saves nothing; the runs folder is held by one results run at a time; and
an earlier run left set aside by a results run killed outright is found by the next one.
"""
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from . import atomic
from .cli import UsageError
from .runlock import LockBusy, RunLock
from .runs import RUN_FILES, kept_apart

RESULTS_LOCK = ".results.lock"  # in the runs folder, held by the results run working there


@contextmanager
def results_lock(runs, reading_only=False):
    """Hold the runs folder for this results run: a second one, which would take the earlier runs this
    one has set aside for ones killed outright, is refused. Yields whether it is held: with
    reading_only (--no-train), a folder that is not there or cannot be written is read without it."""
    runs = Path(runs)
    lock = RunLock(runs, RESULTS_LOCK)
    try:
        if not (reading_only and not runs.is_dir()):
            runs.mkdir(parents=True, exist_ok=True)
            lock.__enter__()
    except LockBusy:
        raise UsageError(f"another results run is working in {runs}; wait for it to finish, or pass another "
                         f"--runs") from None
    except (UsageError, OSError) as e:  # not writable
        if not reading_only:
            raise UsageError(f"cannot write to {runs} ({getattr(e, 'strerror', None) or e}); pass a --runs folder "
                             f"this program can write to") from None
    try:
        yield lock.fd is not None
    finally:
        if lock.fd is not None:
            lock.__exit__(None, None, None)


def check_run_place(out):
    """UsageError unless the results run folder `out` is a folder or nothing at all (not a file, not
    a link to nothing): asked of every run before results trains the first."""
    out = Path(out)
    if (out.exists() and not out.is_dir()) or (out.is_symlink() and not out.exists()):
        raise UsageError(f"{out} is not a folder, and the run {out.name} goes there; move it away or pass "
                         f"another --runs")


def set_aside(out):
    """Move the earlier run's files out of the run folder `out` into a new hidden folder beside it
    (.<name>-earlier-*), and return that folder; None if there was nothing to move. If a file
    cannot be moved, those already moved go back and the error says so."""
    out = Path(out)
    check_run_place(out)
    if not out.is_dir():
        return None  # nothing there yet
    try:
        lock = RunLock(out).__enter__()  # another training writing there: say so rather than pull its files away
    except LockBusy:
        raise UsageError(f"a training is writing to {out} (one started by hand, or left running by a results run "
                         f"that was killed); wait for it to finish, or pass another --runs") from None
    with lock:
        atomic.recover(out)  # a save cut short after its commit: finish it, then move it whole
        earlier = [item for item in out.iterdir() if item.name in RUN_FILES
                   or (kept_apart(item.name) and item.is_dir() and not item.is_symlink())]
        if not earlier:
            return None
        aside = None
        try:
            # named with the time it was set aside: recover_set_aside tells by it which files came after
            aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-earlier-{time.time_ns()}-"))
            for item in earlier:
                item.rename(aside / item.name)
        except OSError as e:
            if aside is not None:
                put_back(aside, out)
            raise UsageError(f"cannot move the earlier run in {out} aside to retrain it ({e.strerror or e}), "
                             f"so it stays as it was; pass a --runs folder this program can write to") from None
    return aside


def put_back(aside, out):
    """Move the earlier run's files from `aside` back into `out`, where nothing of the same name
    has come since, and remove `aside` if that empties it (else say where the rest is)."""
    for item in aside.iterdir():
        if not (out / item.name).exists() and not (out / item.name).is_symlink():
            try:
                item.rename(out / item.name)
            except OSError:
                pass
    try:
        aside.rmdir()
    except OSError:
        print(f"results: some of the earlier run's files could not be put back in {out}; they are in {aside}",
              file=sys.stderr)


def recover_set_aside(out):
    """Finish what a results run killed outright (SIGKILL, a crash) while it retrained the run `out`
    left behind: earlier runs in hidden .<name>-earlier-<time>-* folders beside `out`, which nothing
    would otherwise look at again. As retrain would have, newest first: a folder set aside before
    `out` got the model.npz it holds (the retraining saved) goes; otherwise its files are put back
    where nothing of their name has come since (the model.npz there may be one put back already).
    The caller holds the runs folder's RESULTS_LOCK, so no results run that set one aside is alive; a
    training still writing to `out` is refused (UsageError). Returns what was done, for a message, or None."""
    out = Path(out)
    if not out.parent.is_dir():
        return None
    asides = [d for d in out.parent.glob(f".{out.name}-earlier-*") if d.is_dir() and not d.is_symlink()]
    if not asides:
        return None
    done = set()
    try:
        out.mkdir(exist_ok=True)
        with RunLock(out):
            atomic.recover(out)
            for aside in sorted(asides, key=_set_aside_at, reverse=True):
                model = out / "model.npz"
                if model.exists() and model.stat().st_mtime_ns > _set_aside_at(aside):
                    shutil.rmtree(aside)  # the run there was saved after this one was set aside
                    done.add("removed")
                else:
                    put_back(aside, out)
                    done.add("put back")
    except LockBusy:  # no results run is alive (the caller holds RESULTS_LOCK): a training of its, left running
        raise UsageError(f"a training is writing to {out} (left running by a results run that was killed?), and "
                         f"the earlier {out.name} run is set aside beside it in {out.parent}; wait for the training "
                         f"to finish, then run results again") from None
    except OSError as e:
        raise UsageError(f"an earlier {out.name} run that a results run stopped outright had set aside is in "
                         f"{out.parent} (.{out.name}-earlier-*), and cannot be put back ({e.strerror or e}); "
                         f"move its files into {out}") from None
    return f"{' and '.join(sorted(done))} the earlier {out.name} run that an unfinished results run had set aside"


def _set_aside_at(aside):
    """When `aside` was set aside, in ns: from its name (set_aside's), else its folder's time."""
    stamp = aside.name.split("-earlier-", 1)[1].split("-", 1)[0]
    return int(stamp) if stamp.isdigit() else aside.stat().st_mtime_ns
