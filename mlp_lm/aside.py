"""The run folders results retrains: each earlier run is set aside while its retraining runs (train
started as a user would, stop signals passed on to it), and put back if the retraining saves nothing;
the runs folder is held by one results run at a time; and an earlier run left set aside by a results
run killed outright is found by the next one.
"""
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from . import atomic, shell
from .cli import STOP_CODES, STOP_SIGNALS, UsageError, exit_code, signals_held
from .results_table import complete, diverged
from .runlock import LockBusy, RunLock
from .runs import PICTURES, RUN_FILES, SAVED, kept_apart

RESULTS_LOCK = ".results.lock"  # in the runs folder, held by the results run working there


@contextmanager
def results_lock(runs, make=False):
    """Hold the runs folder for this results run: a second one, which would take the earlier runs this
    one has set aside for ones killed outright, is refused. Yields whether it is held: a folder not
    there yet has nothing set aside in it and is made only if `make` (when runs are to be trained
    there: one that cannot be made is refused here, not by each training in turn), and removed again
    if the results run is refused (a refusal leaves nothing behind)."""
    runs = Path(runs)
    lock = RunLock(runs, RESULTS_LOCK)
    made = [folder for folder in (runs, *runs.parents) if not folder.exists()] if make else []  # deepest first
    try:
        if made:
            runs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot make the --runs folder {runs}: {e.strerror or e}; pass a --runs this program "
                         f"can write to") from None
    refused = False
    if runs.is_dir():
        try:
            lock.__enter__()  # a folder it cannot write: RunLock's one line (results writes its table there)
        except LockBusy:
            raise UsageError(f"another results run is working in {runs}; wait for it to finish, or pass another "
                             f"--runs") from None
    try:
        yield lock.fd is not None
    except UsageError:
        refused = True
        raise
    finally:
        if lock.fd is not None:
            lock.__exit__(None, None, None)
        for folder in made if refused else ():
            try:
                folder.rmdir()  # only while empty: never a run trained before the refusal
            except OSError:
                break


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
            # Named with when it was set aside (to put the newest back first) and its model.npz's inode
            # (0: none), which a rename keeps: recover_set_aside tells by it whose model.npz is in out.
            model = out / "model.npz"
            inode = model.stat().st_ino if model.is_file() and not model.is_symlink() else 0
            aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-earlier-{time.time_ns()}-{inode}-"))
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
        print(f"results: some of the earlier run's files could not be put back in {shell.shown(out)}; they are in "
              f"{shell.shown(aside)}",
              file=sys.stderr)


def train_run(flags):
    """Run `python -m mlp_lm.train flags` as a user would, and return its exit code.

    A stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT) that reaches this process is passed on to the training,
    which saves what it has and exits 130, 143 or 129; we wait for that rather than cut it short,
    however many signals come meanwhile.
    """
    proc, forwarded, pending = None, [], []

    def forward(signum, frame):
        forwarded.append(signum)
        if proc is None:  # not started yet: sent once it is
            pending.append(signum)
        else:
            proc.send_signal(signum)
    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:  # forwarding from before the training starts: a signal while it starts is not lost.
        # Started with the stop signals blocked (a child inherits the mask), the training holds one sent while its
        # Python starts until mlp_lm's handlers unblock them (mlp_lm/__init__.py): no traceback from its startup.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if hasattr(signal, "pthread_sigmask") else None
        try:
            proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *flags])
        finally:
            if mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if pending:
            proc.send_signal(pending[0])
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if code < 0:  # killed by the signal itself (in its first moments, or as it exited): as a shell says it
        return 128 - code
    if forwarded and code != 2:  # stopped, or finished before the signal reached it: either way, stop here
        return 128 + forwarded[0]
    return code


def retrain(out, flags):
    """Train the results run `out` afresh with `flags` (train's flags but --out). Returns train's
    exit code and whether the new run saved anything.

    These runs are regenerated, not a user's models: the one retrained replaces the one there,
    even when it gets nowhere (train keeps a futile run away from an earlier model, in
    out/unconverged, which would leave the table the earlier run's numbers) or is stopped (in
    out/interrupted, where `train --resume` would finish a run the table never reads). So the
    earlier run is moved aside first; once the new one has saved anything it is removed, and if
    the new one saved nothing (train refused its flags, or was stopped before it began) or only
    the best of a run that diverged (not a run of the table's: it is removed), it is put back.
    A new run stopped part-way (Ctrl-C) leaves the earlier one set aside, not removed: results removes
    it (recover_set_aside) once a finished run is in its place, the stopped one resumed or a
    retraining that finished, and until then the user can still take it back, as the message says.
    """
    # From the set-aside to the put-back a signal waits (train_run passes one on to the training),
    # so that nothing can come between the two.
    with signals_held() as held:
        aside = set_aside(out)
        code = None
        try:
            code = exit_code(held[0]) if held else train_run(flags + ["--out", str(out), "--force"])
        finally:  # whatever happened, the earlier run is removed or put back, never left hidden
            saved = (out / "model.npz").exists()  # only the new run can have put one there
            if saved and diverged(out):  # the best of a run that blew up is no run for the table: it goes
                for name in SAVED + PICTURES:
                    (out / name).unlink(missing_ok=True)
                saved = False
                print(f"results: what train kept of the run that diverged is no run of the table: removed from {shell.shown(out)}",
                      file=sys.stderr)
            if aside is not None:
                if saved and code in STOP_CODES and not complete(out):  # not lost to a Ctrl-C in its retraining
                    print(f"results: the earlier {out.name} run is kept in {shell.shown(aside)} until the stopped one is "
                          f"finished, when the next results run here removes it; to keep it instead, move its files "
                          f"back into {shell.shown(out)} in place of the stopped one's", file=sys.stderr)
                elif saved:
                    shutil.rmtree(aside)
                else:
                    put_back(aside, out)
    if held and code not in STOP_CODES:  # a signal while the files moved: stop after them
        code = exit_code(held[0])
    return code, saved


def recover_set_aside(out, stranger=None, finished=None):
    """Finish what a results run killed outright (SIGKILL, a crash) while it retrained the run `out`
    left behind: earlier runs in hidden .<name>-earlier-* folders beside `out`, which nothing would
    otherwise look at again. As retrain would have, newest first: one whose run was replaced (a
    model.npz in `out` that is not its own) goes; otherwise its files are put back where nothing of
    their name has come since (a set-aside or a put-back cut short half-way is finished). Whose
    model.npz is in `out` is told by its inode, which set_aside recorded in the folder's name.
    The caller holds the runs folder's RESULTS_LOCK, so no results run that set one aside is alive; a
    training still writing to `out` is refused (UsageError). stranger(out): why the run now in `out` is
    not one the results run could have trained there, or None; such a run (trained there by hand since)
    did not replace the earlier one, so both stay and UsageError says so. finished(out): whether the run
    in `out` is complete; one that is not (a retraining stopped part-way) has not replaced the earlier
    run yet, which stays set aside until it has. Returns what was done, for a message, or None."""
    out = Path(out)
    if not out.parent.is_dir():
        return None
    asides = [d for d in out.parent.glob(f".{out.name}-earlier-*") if d.is_dir() and not d.is_symlink()]
    if not asides:
        return None
    done, removing, kept = set(), False, None
    try:
        out.mkdir(exist_ok=True)
        with RunLock(out):
            atomic.recover(out)
            for aside in sorted(asides, key=lambda d: _stamp(d)[0], reverse=True):
                removing = _replaced(aside, out)
                problem = stranger(out) if removing and stranger else None
                if problem:  # not the retraining's: the earlier run must not go for it
                    raise UsageError(f"{out} holds a run that {problem}, not one a results run trained, and the "
                                     f"earlier {out.name} run an unfinished results run set aside is beside it in "
                                     f"{aside}; move one of the two away, then run results again")
                if removing and finished is not None and not finished(out):  # not yet its replacement
                    kept, removing = aside, False
                elif removing:
                    shutil.rmtree(aside)
                    done.add("removed")
                else:
                    put_back(aside, out)
                    done.add("put back")
    except LockBusy:  # no results run is alive (the caller holds RESULTS_LOCK): a training of its, left running
        raise UsageError(f"a training is writing to {out} (left running by a results run that was killed?), and "
                         f"the earlier {out.name} run is set aside beside it in {out.parent}; wait for the training "
                         f"to finish, then run results again") from None
    except OSError as e:
        if removing:
            raise UsageError(f"an earlier {out.name} run, replaced since, is set aside in {out.parent} "
                             f"(.{out.name}-earlier-*) and cannot be removed ({e.strerror or e}); remove it by hand") from None
        raise UsageError(f"an earlier {out.name} run that a results run stopped outright had set aside is in "
                         f"{out.parent} (.{out.name}-earlier-*), and cannot be put back ({e.strerror or e}); "
                         f"move its files into {out}") from None
    said = [f"{' and '.join(sorted(done))} the earlier {out.name} run that an unfinished results run had set aside"] \
        if done else []
    if kept is not None:
        said.append(f"the earlier {out.name} run stays set aside in {kept} until the run in {out}, stopped part-way, "
                    f"is finished")
    return "; ".join(said) or None


def _replaced(aside, out):
    """Whether the run in `aside` was replaced in `out`: out holds a model.npz that is not the aside's.
    Without its inode in the name (an older aside), only a model.npz still in the aside proves that."""
    model = out / "model.npz"
    if not model.is_file():
        return False
    if (aside / "model.npz").exists():  # its own is still aside, so the one in out is another
        return True
    _, inode = _stamp(aside)
    return inode is not None and model.stat().st_ino != inode  # not its own, put back half-way


def _stamp(aside):
    """(when `aside` was set aside in ns, its model.npz's inode or 0 for none), from the name set_aside
    gave it; (the folder's time, None) for a name without them."""
    parts = aside.name.split("-earlier-", 1)[1].split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return aside.stat().st_mtime_ns, None
