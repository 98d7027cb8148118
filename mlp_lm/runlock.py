"""The lock that keeps two trainings out of one run folder."""
import fcntl
import os
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
                held, there = os.fstat(self.fd), os.stat(self.path)
                if (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):  # not another training's, in a folder
                    self.path.unlink()  # that replaced ours; while still holding it, so no one locks a file about to go
            except OSError:  # the folder turned read-only: the file stays, the lock goes with the descriptor
                pass
            os.close(self.fd)
            self.fd = None


def lock_id(out):
    """(device, inode) of out/.lock, the file a RunLock holds while a training writes there, or None."""
    try:
        st = os.stat(Path(out) / LOCK)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class FolderHold:
    """A training's run folder as it found it, to ask before each save whether the folder at that path is still
    its own: it holds the folder open, so that no folder made at the path later can have its inode, and notes the
    lock's file. lost() says why not: the folder was removed, moved or replaced (it may be another run's now), or
    another training's lock is in it. Its own lock file gone alone (a clean-up of /tmp) leaves it the run's."""

    def __init__(self, out):
        self.out, self.lock = Path(out), lock_id(out)
        try:
            self.fd = os.open(out, os.O_RDONLY)
        except OSError:  # (nothing to compare with: never called lost)
            self.fd = None

    def lost(self):
        if self.fd is None:
            return None
        try:
            same = os.path.samestat(os.stat(self.out), os.fstat(self.fd))
        except OSError:  # not there any more
            same = False
        lock = lock_id(self.out)
        if same and (lock is None or lock == self.lock):
            return None
        return (f"{self.out} is not this run's folder any more: " + (
            "another training holds it now" if same else "it was removed, moved or replaced while the run trained"
            + (" (another training holds it now)" if lock is not None else "")))

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
