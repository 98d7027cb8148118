"""The lock that keeps two trainings out of one run folder."""
import fcntl
import os
import re
import stat
import time
from pathlib import Path

from .cli import UsageError

LOCK = ".lock"  # holds the pid of the training writing to a run folder
PROBE_TRIES = 3  # RunLock's tries, 10 ms apart, before it calls a held lock another training's


class LockBusy(UsageError):
    """Another training holds the folder."""


class RunLock:
    """out/.lock, held for the duration of a training: a second training into the same folder refuses.

    The lock is the kernel's (flock) on that file: of two trainings starting at the same moment
    exactly one gets it, and the kernel lets go of it when its process ends, however it ends,
    so a killed run leaves no lock behind. The file holds the pid, for the refusal's message.
    """

    def __init__(self, out, name=LOCK):
        self.path = Path(out) / name
        self.fd = None

    def __enter__(self):
        if self.fd is not None:  # taken already (claim_default_out takes it before handing the folder over)
            return self
        tries = 0
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as e:
                if os.path.lexists(self.path) and not os.path.isfile(self.path):  # the folder is writable
                    raise UsageError(f"{self.path} is not a file ({e.strerror}), and it is where this program "
                                     f"keeps its lock; remove it, or use another folder") from None
                raise UsageError(f"cannot write to {self.path.parent}: {e.strerror}; make it writable or use "
                                 f"another folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = _busy(fd, self.path.parent)
                os.close(fd)
                tries += 1
                if tries < PROBE_TRIES:  # check_free's probe holds it for microseconds; a training, for good
                    time.sleep(0.01)
                    continue
                raise busy from None
            try:  # the file we locked is still the one at the path (its last holder removes it on leaving)
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        if stat.S_ISREG(os.fstat(fd).st_mode) and not _a_lock(os.pread(fd, 64, 0)):  # a user's file under the
            os.close(fd)  # lock's name: never truncated, nor removed (and the lock goes with the descriptor)
            raise UsageError(f"{self.path} holds something other than a lock of this program's (a process id), "
                             f"and it is where this program keeps its lock; move that file, or use another folder")
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
                if os.path.samestat(os.stat(self.path), os.fstat(self.fd)):  # not another training's, in a folder that
                    self.path.unlink()  # replaced ours; while still holding it, so no one locks a file about to go
            except OSError:  # the folder turned read-only: the file stays, the lock goes with the descriptor
                pass
            os.close(self.fd)
            self.fd = None


def _a_lock(head):
    """Whether the first bytes of a file named as the lock are what a lock holds: nothing (new, or left
    by a full disk) or a process id and a line end (left by a training that was killed)."""
    return bool(re.fullmatch(rb"[0-9]{0,20}\n?", head))


def is_lock(path):
    """Whether the file at `path`, named as the lock, is one a lock may be: a regular file holding what a lock
    holds (see _a_lock), or no regular file at all (a FIFO, which RunLock takes as it is: nobody's words are in
    it). False for a regular file that cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO would block a plain open)
    except OSError:
        return False
    try:
        return not stat.S_ISREG(os.fstat(fd).st_mode) or _a_lock(os.pread(fd, 64, 0))
    except OSError:
        return False
    finally:
        os.close(fd)


def held(out, name=LOCK):
    """Whether a training (or, with name, a results run) holds the folder `out` now: check_free's question."""
    try:
        check_free(out, name)
    except LockBusy:
        return True
    return False


def lock_id(out):
    """(device, inode) of out/.lock, the file a RunLock holds while a training writes there, or None."""
    try:
        st = os.stat(Path(out) / LOCK)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _file_id(path):
    """(device, inode, modification time) of the file at `path`, or None: another one once it is replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


class FolderHold:
    """A training's run folder as it found it, to ask before each save whether the folder at that path is still
    its own: it holds the folder open, so that no folder made at the path later can have its inode, and notes its
    lock's file and its model.npz, which only this run's own saves may change (saved() after each). lost() says
    why not: the folder was removed, moved or replaced (it may be another run's now), another training holds it
    (its lock file removed, another run took the folder), or another run saved there meanwhile. Its own lock file
    gone alone (a clean-up of /tmp), or left by a run killed outright, leaves the folder the run's."""

    def __init__(self, out):
        self.out, self.lock = Path(out), lock_id(out)
        self.saved()
        try:
            self.fd = os.open(out, os.O_RDONLY)
        except OSError:  # (nothing to compare with: never called lost)
            self.fd = None

    def saved(self):
        """This run has just written its files: the model.npz there now is its own."""
        self.model = _file_id(self.out / "model.npz")

    def lost(self):
        if self.fd is None:
            return None
        try:
            same = os.path.samestat(os.stat(self.out), os.fstat(self.fd))
        except OSError:  # not there any more
            same = False
        if not same:
            return (f"{self.out} is not this run's folder any more: it was removed, moved or replaced while the run "
                    f"trained")
        lock = lock_id(self.out)
        if lock is not None and lock != self.lock:  # another lock file: held by a training, or left by a dead one
            try:
                check_free(self.out)
            except LockBusy:
                return f"{self.out} is not this run's folder any more: another training holds it now"
        if _file_id(self.out / "model.npz") != self.model:
            return f"{self.out} is not this run's folder any more: another run saved its model there meanwhile"
        return None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    __del__ = close  # (train_into's hold goes when it returns or raises)


def _busy(fd, out):
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return LockBusy(f"another training{f' (process {pid})' if pid.isdigit() else ''} is writing to "
                    f"{out}; wait for it to finish or pass another --out")


def check_free(out, name=LOCK):
    """Raise LockBusy if a training holds `out` now. Unlike RunLock it makes no lock file and holds
    nothing, so it can ask of a folder it cannot write to (a finished run, read-only, say)."""
    try:
        fd = os.open(Path(out) / name, os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO there would block a plain open)
    except OSError:  # no lock file: no training there
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while someone holds it exclusively
    except BlockingIOError:
        raise _busy(fd, Path(out)) from None
    except OSError:  # not a file flock takes: no training's lock
        pass
    finally:
        os.close(fd)  # and with it the shared lock, taken only to ask (RunLock tries again a moment later)
