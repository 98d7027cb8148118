"""Writing a run folder's files as one: all the new ones, or, whenever the writing is cut short
(a kill, a crash, a full disk), all the old ones.

Each file is written in full under a hidden temporary name beside it; then one rename puts in
place a journal listing the renames still to do, which is the moment the new files count as
written; then the renames, and the journal goes. recover() finishes the renames of a journal
that a crash left behind, and every command runs it before it reads or writes a run folder.
checkpoint.py writes model.npz through this, and runs.py a run's other files beside it.
"""
import errno
import fnmatch
import glob
import json
import os
import stat
import tempfile
import time
from pathlib import Path


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message says why."""


JOURNAL = ".commit.json"  # in a folder being written by write_atomic: the renames that complete it
JOURNAL_MAX_BYTES = 1 << 16  # ours lists a few renames; anything bigger is not ours
TEMPORARY_EXTRA = len("..") + 8 + len(".tmp")  # bytes write_temporary adds to a file's name: ".NAME.xxxxxxxx.tmp"


def check_save_place(folder, names=()):
    """Raise CheckpointError if something sits where write_atomic would put its journal (anything
    but a file) or one of the files `names` (a folder: no file can be renamed over one). Train asks
    before it starts, so that the run is not found unsaveable only at its end; write_atomic asks again."""
    journal = Path(folder) / JOURNAL
    if journal.is_symlink() or (journal.exists() and not journal.is_file()):
        raise CheckpointError(f"{journal} is in the way of saving (it is not a file mlp_lm wrote); remove it")
    for name in names:
        path = Path(folder) / name
        if path.is_dir() and not path.is_symlink():
            raise CheckpointError(f"{path} is a folder, in the way of saving the file {name} there; "
                                  f"move it away or pass another --out")


def write_atomic(files):
    """Write several files of one folder as one: [(path, write(binary file))]. Afterwards the
    folder holds all the new files or, whenever the writing is cut short, all the old ones.

    1. Each file is written in full to a temporary name beside it and flushed to disk.
       A full disk or any error here removes the temporaries and changes nothing (an
       OSError becomes a CheckpointError saying so).
    2. A journal (JOURNAL) listing the renames still to do is put in place with one rename:
       this is the moment the new files count as written.
    3. The temporaries are renamed over the old files, and the journal is removed.

    The folder itself is synced after 2 and after 3, so a power cut keeps what a kill keeps.

    A kill or a crash between 2 and 3 leaves a journal, and recover(folder), which every
    command runs before it reads or writes a run folder, finishes the renames. A kill before
    2 leaves temporaries (the journal's too), which the next write of the same files removes.
    The caller must be the folder's only writer (train holds runlock.RunLock).
    """
    folder = {Path(path).parent for path, _ in files}
    if len(folder) != 1:
        raise ValueError(f"write_atomic writes the files of one folder, got {sorted(map(str, folder))}")
    folder = folder.pop()
    recover(folder)
    check_save_place(folder, [Path(path).name for path, _ in files])
    # Temporaries of an earlier write of these files that was killed before its commit, its journal's too
    for path in [Path(path) for path, _ in files] + [folder / JOURNAL]:
        remove_stale_temporaries(path)
    temps = []
    try:
        for path, write in files:
            path = Path(path)
            write_temporary(path, write, temps)  # on disk before the journal can point at it
        moves = [[Path(tmp).name, Path(path).name] for (path, _), tmp in zip(files, temps)]
        path = folder / JOURNAL  # what a failure from here on is about
        journal = write_temporary(path, lambda f: f.write(json.dumps(moves).encode()), temps)
        os.replace(journal, folder / JOURNAL)  # the commit
    except BaseException as e:
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"cannot write {path}: {e.strerror or e}; the previous files there, "
                                  f"if any, are unchanged") from None
        raise
    sync_folder(folder)  # the commit on disk: a power cut now leaves the journal, not the old files
    recover(folder)
    try:  # A reader's recover() that read the journal before ours and stalled can drop ours unread: do its renames
        for tmp, name in moves:  # (a temporary still here was not renamed by anyone)
            if (folder / tmp).exists() and not (folder / JOURNAL).exists():
                os.replace(folder / tmp, folder / name)
    except OSError:
        pass  # (then a temporary is still there, and said below)
    if (folder / JOURNAL).exists() or any((folder / tmp).exists() for tmp, _ in moves):  # committed, not in place
        raise CheckpointError(f"cannot move the new files into place in {folder} (they wait there under "
                              f"hidden names, listed in {JOURNAL}); the files in their place are the previous ones")


STALE_SECONDS = 3600  # write_whole's caller may not be the file's only writer: a temporary this old is no write's


def is_temporary_of(name, filename):
    """Whether `filename` is a name write_temporary gives a temporary of the file `name` (".NAME.xxxx.tmp"),
    as remove_stale_temporaries matches them."""
    return fnmatch.fnmatchcase(filename, f".{glob.escape(name)}.*.tmp")


def remove_stale_temporaries(path, older_than=0):
    """Remove the temporaries of `path` (write_temporary's names) that a write killed before its
    rename left beside it, those last written more than `older_than` seconds ago: all of them for the
    file's only writer (a run's save, under the run's lock), else only those no write still makes
    (two python -m mlp_lm.draw, or one and a run's own drawing, took each other's away)."""
    now = time.time()
    for stale in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp"):
        try:
            if not older_than or now - stale.stat().st_mtime > older_than:
                stale.unlink(missing_ok=True)
        except OSError:  # gone meanwhile, or not ours to remove: the write goes on
            pass


def write_temporary(path, write, made=None):
    """Write a file in full under a hidden temporary name beside `path` (".NAME.xxxx.tmp"), with a
    normal file's mode, flushed to disk, and return that name; the caller renames it into place.
    The name goes into `made` (a list) as soon as the file exists, so a caller can remove it if
    the writing fails."""
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    if made is not None:
        made.append(tmp)
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it a normal file's mode
    return tmp


def write_whole(path, data, follow=True):
    """Replace the file at `path` with the bytes `data`, whole or not at all: written in full
    under a temporary name beside it and renamed over it (a kill or a full disk leaves the old
    file), then the folder synced. As writing into the file would: through a link to the file
    it names, refused for a file this program may not write, and keeping the file's mode (a
    hard link's other names keep the old contents); but never over what is not a regular file
    (a link to /dev/full, or a pipe: renamed over, its node would be replaced). Raises OSError naming
    `path`, with the temporary removed; temporaries a killed earlier write left are removed first.
    With follow=False, a link at `path` is itself replaced, as a run's own files are (a run's picture
    named by its folder, not a file a link there leads to outside it)."""
    path = Path(os.path.realpath(path)) if follow else Path(os.path.realpath(Path(path).parent)) / Path(path).name
    made = []
    try:
        link = path.is_symlink()  # only with follow=False: realpath leaves none
        if not link and path.exists() and not (path.is_file() or path.is_dir()):  # (a folder says so, in os.replace)
            raise OSError(errno.EINVAL, "a device or a pipe, not a file to replace")
        remove_stale_temporaries(path, STALE_SECONDS)
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() and not link else None
        if mode is not None and not os.access(path, os.W_OK):  # a read-only file system's refusal too: say which
            refusal = errno.EROFS if read_only(path.parent) else errno.EACCES
            raise OSError(refusal, os.strerror(refusal))
        tmp = write_temporary(path, lambda f: f.write(data), made)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        for tmp in made:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # named after the file asked for, not the temporary (or nothing)
            e.filename, e.filename2 = str(path), None
        raise
    sync_folder(path.parent)


def read_only(folder):
    """Whether `folder` is on a file system mounted read-only (False where that cannot be told)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def sync_folder(folder):
    """Flush a folder's entries to disk, so the renames made in it survive a power cut, not
    only a kill (a file's own fsync does not cover its name). Best effort: it is called once
    the new files are committed, so an error here (a file system or platform that refuses to
    sync a folder, or even an I/O error) changes nothing and is not reported; the renames are
    then as durable as the file system makes them."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_journal(moves):
    """Whether `moves` is what write_atomic writes: [[".NAME.xxxx.tmp", "NAME"], ...], plain names
    in the folder itself, each temporary named after the file it replaces."""
    return isinstance(moves, list) and all(
        isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)
        and "/" not in m[0] + m[1] and "\\" not in m[0] + m[1] and m[1] not in ("", ".", "..", JOURNAL)
        and m[0].startswith(f".{m[1]}.") and m[0].endswith(".tmp") for m in moves)


def recover(folder):
    """Finish a write_atomic that was cut short after its commit: rename what its journal lists
    (a temporary that is gone was renamed already), then drop the journal. Safe to run at any
    time and more than once; does nothing in a folder without a journal or that cannot be written."""
    journal = Path(folder) / JOURNAL
    try:
        st = journal.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > JOURNAL_MAX_BYTES:  # a pipe, a device, a link: not ours
            return
        moves = json.loads(journal.read_text())
    except (OSError, ValueError, RecursionError):  # none, or unreadable: leave it alone
        return
    if not _is_journal(moves):  # not one write_atomic wrote: never let it move files
        return
    try:
        for tmp, name in moves:
            try:
                os.replace(Path(folder) / tmp, Path(folder) / name)
            except FileNotFoundError:  # renamed already, by us before a crash or by another reader
                pass
        # the journal read, not a newer one that a writer put there meanwhile (its own next save): whose renames
        if os.path.samestat(journal.lstat(), st):  # this call has not done
            journal.unlink(missing_ok=True)
        sync_folder(folder)  # the new files in place for good, before anyone is told they are saved
    except (OSError, TypeError, ValueError):  # a read-only folder, or a journal that is not ours
        pass
