"""Data at scale, the bench's last part: a generated word list of n items read, encoded and split
in a fresh process, which reports its time and peak memory (python -m mlp_lm.bench --items N)."""
import errno
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .cli import UsageError
from .data import dataset_bytes
from .runtime import check_fits
from .wordfile import READ_BYTES_PER_LINE


def write_items(file, n, seed=0, max_len=64):
    """n random lowercase items of 1 to max_len letters, written without a loop over items into `file`,
    an open binary file or a path."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, n)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)[rng.integers(0, 26, lengths.sum())]
    data = np.insert(letters, np.cumsum(lengths), ord("\n")).tobytes()
    if isinstance(file, (str, os.PathLike)):
        Path(file).write_bytes(data)
    else:
        file.write(data)
        file.flush()


MAX_ITEMS = 10**8  # a generated file of about 3 GB


def memory_needed(n, max_len=64):
    """A bound on the memory the larger of this part's two stages takes for n items: writing the file
    here (write_bytes) or reading and encoding it in the fresh process (data.dataset_bytes beside
    wordfile's bytes a line). Lengths are uniform on 1..max_len: the letters are counted at their mean
    plus more than six standard deviations."""
    letters = n * (max_len + 1) // 2 + 6 * max_len * int(n ** 0.5) + max_len
    return max(write_bytes(n, letters), dataset_bytes(letters + n, n, 3) + READ_BYTES_PER_LINE * n)


def write_bytes(n, letters):
    """A bound on what write_items holds at once for n items of `letters` letters in all: per item its
    length and place (8 bytes each) and 16 more for its newline's insertion; per letter its draw (8
    bytes) and three copies of one byte (the letters, the file's bytes, and their bytes object)."""
    return 32 * n + 11 * letters


def check_room(n):
    """Before the bench's first measurement: the data at scale's n items fit this machine's memory."""
    check_fits(memory_needed(n), f"the data at scale ({n:,} generated items, read and split)",
               "pass fewer --items")

# The fresh process's first lines: a bench stopped outright (SIGKILL) cannot stop it, so it ends with the
# bench (Linux's PR_SET_PDEATHSIG, 1, with SIGKILL, 9), or at once if the bench is already gone (the
# bench's pid is passed in).
WITH_THE_BENCH = """import os, sys
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[2]):
    sys.exit(1)
"""
LOAD = WITH_THE_BENCH + """import time
from mlp_lm.data import load_splits
t0 = time.perf_counter()
s = load_splits(sys.argv[1], 3)
print(time.perf_counter() - t0, sum(a.nbytes for part in (s.train, s.dev, s.test) for a in part))
"""


def data_at_scale(n):
    """Read, encode and split a generated file of n items in a fresh process: its seconds, its peak
    resident memory (the interpreter and numpy included) and the bytes of the examples' arrays. The
    file has no name from the start (tempfile.TemporaryFile) and the process reads it through
    /dev/fd, so a bench stopped in any way, even outright, leaves no file of up to 3 GB behind; a stop
    signal stops the process too."""
    def unwritable(e):  # else cli.run's "cannot write the output", as if stdout had failed
        where = f"the temporary directory {tempfile.tempdir}" if tempfile.tempdir else "a temporary directory"
        room = ("raise this shell's file size limit (ulimit -f)" if e.errno == errno.EFBIG else
                "free some space there, set TMPDIR to another folder")
        return UsageError(f"cannot write the generated word list ({n:,} items) in {where}: {e.strerror or e}; "
                          f"{room}, or pass fewer --items")
    try:
        scratch = tempfile.TemporaryFile()  # fails when no candidate folder takes a file
    except OSError as e:
        raise unwritable(e) from None
    with scratch as file:
        try:
            write_items(file, n)
        except OSError as e:
            raise unwritable(e) from None
        file.seek(0)  # where /dev/fd shares this descriptor's offset (macOS) rather than opening the file anew
        fd = file.fileno()  # the same number in the process, which pass_fds keeps it under
        by_fd = f"/dev/fd/{fd}" if os.path.isdir("/dev/fd") else f"/proc/self/fd/{fd}"  # (a container without /dev/fd)
        proc = subprocess.Popen([sys.executable, "-c", LOAD, by_fd, str(os.getpid())], pass_fds=(fd,),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.stdout.read(), proc.stderr.read()  # a line each at most: neither pipe can fill
            _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 also gives the child's peak memory
        except BaseException:  # a stop signal: the bench's report of it comes after this process has ended
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
        if os.waitstatus_to_exitcode(status) != 0:  # e.g. too little memory for n items
            why = err.strip().splitlines()[-1] if err.strip() else f"exit status {status}"
            raise UsageError(f"loading {n:,} generated items failed ({why}); use fewer --items")
        seconds, array_bytes = out.split()
        return {"items": n, "file_bytes": os.fstat(fd).st_size, "seconds": float(seconds),
                "peak_rss_bytes": usage.ru_maxrss * 1024, "example_bytes": int(array_bytes)}
