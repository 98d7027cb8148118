"""Run folders: where a training writes, who is writing there, and what it writes.

A run folder holds model.npz (with the training state to resume from, read back by resume.py),
metrics.json and loss.csv. Without --out each run gets a new folder; a lock file (runlock.py) keeps
two trainings out of one folder; a run the folder cannot take is rescued to the temporary directory
(rescue.py); sample finds the newest run. (results' handling of the run folders it retrains is aside.py.)
"""
import errno
import itertools
import os
import re
import shutil
from pathlib import Path

from . import atomic, checkpoint, shell, wordfile
from .cli import UsageError
from .jsonout import json_text
from .runlock import LOCK, LockBusy, RunLock, is_lock
from .runtime import gib
from .space import bytes_to_save, check_file_size_limit, file_sizes  # (how much room it needs)
from .wordfile import in_checkout


def prepare_out(out, sweep=False, side=True):
    """Make the run folder `out` if need be, or UsageError saying why it cannot hold this run's files:
    a file in its place, a link to nowhere, a folder this program cannot write to, or a path too long
    for the longest the save writes there (a sweep's files, or a run's, in a side folder if `side`)."""
    out = Path(out)
    check_path_length(out, sweep, side)
    if out.exists() and not out.is_dir():  # else mkdir says only "File exists"
        raise UsageError(f"--out {out} is a file, not a folder; name a folder for the run (it is made if missing)")
    if out.is_symlink() and not out.exists():  # mkdir would say "File exists" here too
        try:
            out.resolve(strict=True)
            loop = False
        except RuntimeError:  # how Python 3.11 reports a loop of links
            loop = True
        except OSError as e:
            loop = e.errno == errno.ELOOP
        why = "is part of a loop of links" if loop else f"leads to {os.path.realpath(out)}, which does not exist"
        raise UsageError(f"--out {out} is a symbolic link that {why}; "
                         f"{'' if loop else 'make that folder, or '}name another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # our own: two runs starting at once do not collide
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output directory {out}: {e.strerror}; pass a writable --out") from None
    return out


def check_path_length(out, sweep=False, side=True):
    """UsageError if a file the save writes in `out` would have a path past the system's limit. The save
    writes under its longest names, by their absolute paths (tempfile makes them so), and a run goes to a
    side folder (unconverged-2, ...) when `out` holds a model already: a write probe's short name in `out`
    could pass where they do not. Checked before `out` is made, so a refusal leaves no folder behind."""
    names = SWEEP_FILES if sweep else (*SAVED, *PICTURES, atomic.JOURNAL)
    tail = 1 + max(map(len, names)) + atomic.TEMPORARY_EXTRA  # "/.embedding.png.xxxxxxxx.tmp"
    if side and not sweep:
        tail += 1 + max(map(len, SIDE_FOLDERS)) + len("-99")  # "/unconverged-99"
    absolute = Path(os.path.abspath(out))
    longest = len(os.fsencode(absolute)) + tail
    path_max = -1  # where there is no limit, or the system cannot say
    for folder in (absolute, *absolute.parents):  # the deepest that exists
        if folder.is_dir():
            try:
                path_max = os.pathconf(folder, "PC_PATH_MAX")
            except (OSError, ValueError, AttributeError):
                pass
            break
    if 0 < path_max <= longest:  # the limit counts the terminating NUL
        raise UsageError(f"--out {out} is too long a path: the files a {'sweep' if sweep else 'run'} saves there "
                         f"would have paths of {longest:,} bytes, past this system's limit of {path_max - 1:,}; "
                         f"name a shorter --out")


def check_space(out, cfg, n_params, resuming=False):
    """Refuse, before training, a run whose files the disk under `out` cannot hold. Returns whether it
    also has room for snapshots as it trains (snapshot.py): a new run's last snapshot is still there
    while its final files are written, which then need the room twice (a resumed run's own files are
    there already, and are replaced the same way). Asked under the run's lock, it first removes what a save
    killed before its commit left in `out` (hidden temporaries), which the next save would remove anyway."""
    for name in (*SAVED, atomic.JOURNAL):
        atomic.remove_stale_temporaries(Path(out) / name)
    check_file_size_limit(max(file_sizes(cfg, n_params)), "this run's largest file", resuming)
    need = bytes_to_save(cfg, n_params)
    free = shutil.disk_usage(out).free
    if free < need:  # a resumed run continues from its files in `out`: no other --out can take it
        raise UsageError(f"{out} has {gib(free, 1)} free, and this run's files need about "
                         f"{gib(need, 1)}; free some space "
                         + ("on that disk, then --resume again" if resuming else "or pass another --out"))
    return resuming or free >= 2 * need


def resume_command(folder):
    """The command that continues the run stopped in `folder`, as the messages that point at one give it."""
    return f"python -m mlp_lm.train --resume --out {shell.path(folder)}"


def claim_default_out(data):
    """A new run folder for `data`, created and locked: runs/<data file stem>, or the first of
    runs/<stem>-2, -3, ... that holds no model and that no other training holds. A second run
    never replaces the first, and two started at once get two folders. Returns (folder, lock held)."""
    return claim_fresh(in_checkout(Path("runs") / folder_name(data)))


STEM_BYTES = 100  # of a data file's stem kept in its run folder's name (file systems allow 255)


def folder_name(data):
    """The run folder's name for the data file `data`: its stem, without leading dots (a stem of '.'
    or '..' would put the run in runs/ itself or beside it, and sample skips hidden folders), cut
    to STEM_BYTES so that '-2' and the like still fit; 'data' if nothing is left."""
    name = Path(data).stem.lstrip(".")
    while len(os.fsencode(name)) > STEM_BYTES:  # whole characters off the end, never half of one
        name = name[:-1]
    return name or "data"


def claim_fresh(base):
    """The first of base, base-2, base-3, ... that is empty (but for a lock file) and that no
    other training holds, created and locked. Returns (folder, lock held)."""
    base = Path(base)
    for n in itertools.count(1):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if candidate.is_symlink() or (candidate.exists() and not candidate.is_dir()):  # not ours to touch
            continue
        atomic.recover(candidate)  # a save cut short after its commit is a model too
        if candidate.is_dir() and any(p.name != LOCK or not is_lock(p) for p in candidate.iterdir()):
            continue  # a model, a sweep's table, or anything else someone put there (a word list named .lock
            # among them: a hostile tester's): not a new folder
        existed = candidate.is_dir()
        try:
            out = prepare_out(candidate, side=False)  # a new folder, or a side folder itself: no model there yet
        except UsageError:
            if existed:  # an empty folder this program cannot write to (immutable, say): try the next
                continue
            raise  # one it cannot even make: the next would fail alike
        lock = RunLock(out)
        try:
            lock.__enter__()
        except LockBusy:
            continue
        if any(p.name != LOCK for p in out.iterdir()):  # another run wrote there between our look and the lock
            lock.__exit__()
            continue
        return out, lock


def kept_apart(name):
    """Whether a folder of this name is one a training put a run in beside a model it would not
    replace: unconverged or interrupted, or a later one of them (interrupted-2, -3, ...)."""
    return re.fullmatch(r"(unconverged|interrupted)(-[2-9]|-[1-9][0-9]+)?", name) is not None


def loss_csv(losses, devs):
    lines = ["step,train_loss,dev_loss"]
    lines += [f"{i + 1},{loss:.6f},{devs[i + 1]:.6f}" if i + 1 in devs else f"{i + 1},{loss:.6f},"
              for i, loss in enumerate(losses)]
    return "\n".join(lines) + "\n"


SAVED = ("loss.csv", "metrics.json", "model.npz")  # what save_run writes
PICTURES = ("loss.png", "embedding.png")  # drawn after it (with matplotlib); an earlier run's go at the save
SIDE_FOLDERS = ("interrupted", "unconverged")  # where a run goes when --out holds a model it may not replace
SWEEP_FILES = ("lr_sweep.csv", "lr_sweep.png")  # all that --lr-sweep writes: it leaves a run alone, and a run it
# What a training or a sweep writes into its --out (the lock and the journal are the run folder's own): all of
# it an earlier run's, as are the folders it puts a run in when it will not replace the model there.
RUN_FILES = (*SAVED, *PICTURES, *SWEEP_FILES)


def written_by(sweep=False):
    """The names of the files a training (or a sweep) writes into its folder, each by a rename."""
    return SWEEP_FILES if sweep else SAVED + PICTURES


def files_in_the_way(out, sweep=False):
    """The files already in `out` that a training (or a sweep) into it would replace or remove: without
    --force a run leaves them be, an earlier run's or anyone else's. (A folder under one of those names
    stays whatever happens: save_run removes files only.)"""
    paths = [Path(out) / name for name in written_by(sweep)]
    return [p.name for p in paths if p.is_symlink() or (p.exists() and not p.is_dir())]


def data_in_the_way(out, data, sweep=False):
    """The name of the file in `out` that a training (or a sweep) into it would write, or the lock or
    journal it keeps there, when that file is its own data file `data`: the word list would be lost to
    the run's loss.csv (a hostile tester's `--data RUN/loss.csv --out RUN --force`). None otherwise.
    A link named like a run file is replaced, not written through, so only the data's own entry counts
    (or the same entry under a case-insensitive name; a hard link only for the lock, written in place)."""
    try:
        folder, target = Path(out).resolve(), Path(data).resolve()
    except (OSError, RuntimeError, ValueError):  # a loop, say: the reading of the data says what is wrong
        return None
    renamed = written_by(sweep)  # replaced by a rename: a hard link elsewhere keeps its bytes
    names = (*renamed, LOCK, atomic.JOURNAL)  # the lock is written in place
    if target.parent == folder and any(atomic.is_temporary_of(name, target.name) for name in names):
        return target.name  # named as a temporary of one of them, which the save removes
    for name in names:
        entry = folder / name
        try:
            if entry == target or (not entry.is_symlink() and entry.exists() and os.path.samefile(entry, target)
                                   and (name not in renamed or os.stat(target).st_nlink == 1)):  # (one entry: the
                # same name to a case-insensitive file system)
                return name
        except OSError:  # a data file not there (resume's, moved): nothing of it to lose
            continue
    return None


RUN_FILE_STARTS = {"loss.csv": b"step,", "metrics.json": b"{", "model.npz": b"PK",
                   "loss.png": b"\x89PNG", "embedding.png": b"\x89PNG"}  # how each file a run writes begins


def data_moved_in(out, config):
    """The name of a file in `out` that a save would replace and that holds the run's data, when the data is not
    where the run read it any more: the word list moved there while the run trained (a hostile tester's `mv
    words.txt RUN/loss.csv` and then Ctrl-C, which lost it). None otherwise. Only a file that does not begin
    as a run's file of its name is read through to tell."""
    sha, data = (config.get("data_sha256"), config.get("data")) if isinstance(config, dict) else (None, None)
    if not (isinstance(sha, str) and isinstance(data, str)):
        return None
    for name, start in RUN_FILE_STARTS.items():
        entry = Path(out) / name
        try:
            if entry.is_symlink() or not entry.is_file():  # a link is replaced, not written through
                continue
            with open(entry, "rb") as f:
                head = f.read(len(start))
        except OSError:
            continue
        if head != start and wordfile.is_the_file(entry, sha) and not wordfile.is_the_file(data, sha):
            return name  # (a copy, with the data still where the run read it, loses nothing)
    return None


def save_run(out, params, vocab, config, state, summary, losses, devs):
    """Write a run's files: model.npz (with the training state to resume from), metrics.json
    (`summary`) and loss.csv. Each is written in full under a temporary name first, then all are
    moved into place behind a journal (atomic.write_atomic): the folder holds this run or the
    previous one, never a mix."""
    out = Path(out)
    if moved := data_moved_in(out, config):
        raise checkpoint.CheckpointError(f"{out / moved} now holds this run's data, moved there as it trained, which "
                                         f"saving there would replace")
    writers = {"loss.csv": lambda f: f.write(loss_csv(losses, devs).encode()),
               "metrics.json": lambda f: f.write(json_text(summary).encode()),
               "model.npz": checkpoint.writer(params, vocab, config, state, check=False)}  # see writer
    atomic.write_atomic([(out / name, write) for name, write in writers.items()])
    for name in PICTURES:  # an earlier run's, or this one's before it was stopped: drawn anew after the save
        try:
            (out / name).unlink(missing_ok=True)
        except OSError:  # a folder of that name, say: not ours, and the run is saved
            pass
