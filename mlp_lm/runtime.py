"""How the process runs the math: BLAS threads, and how freed memory is kept.

BLAS threads.

The lecture's matrices are small: at batch 32 one product is a few hundred
thousand multiply-adds, over in microseconds, and OpenBLAS's worker threads
cost more to wake and synchronise than they save. Worse, they busy-wait: on a
machine where anything else is running they spin against it, and a run can
slow down tens of times. So the products run on one thread unless they are
big enough for a second one to pay (docs/performance.md has the measurements).

threadpoolctl changes the thread count of the BLAS numpy already loaded, at
run time, so no environment variable has to be set before numpy is imported
for it. How long OpenBLAS's idle workers spin is the one setting it cannot
change: mlp_lm/__init__.py shortens it for the commands, before numpy loads.

Freed memory. Every step allocates fresh arrays for its intermediates (the
code reads better for it). At batch 1024 they are hundreds of kilobytes each,
and glibc's malloc hands blocks that large straight back to the kernel when
they are freed, so the next step pays page faults to get them again: about 40%
of a step at batch 1024. keep_freed_memory() asks malloc to keep such blocks
for reuse instead (mallopt; glibc only, a no-op elsewhere).
"""
import ctypes
import os
import platform
import time

import numpy as np

_KMP = "KMP_DUPLICATE_LIB_OK"  # threadpoolctl sets it in os.environ when imported (for Intel's OpenMP)
_kmp_before = os.environ.get(_KMP)
from threadpoolctl import threadpool_limits  # noqa: E402
if _kmp_before is None:  # ours is a library too: a host program's environment, and its children's, stay its own
    os.environ.pop(_KMP, None)

from . import BLAS_SPIN_VARIABLE  # noqa: E402

CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"  # which kernels OpenBLAS runs, when set; by default it picks for the processor

# Multiply-adds in the largest product of a step for each BLAS thread: a second thread from 2 M
# on an idle machine. Not for the lecture's model at batch 32 (0.2 M) or 256 (1.5 M); batches
# of 512 and up are split instead (split_parts); the best preset's 25 M at batch 128 get two
# (python -m mlp_lm.bench --threads N; docs/performance.md has the numbers).
MIN_WORK_PER_THREAD = 1_000_000


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _cpu_ticks():
    """(busy ticks of the whole machine, ticks of all its CPUs, ticks this process used), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (OSError, ValueError, IndexError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - fields[3] - fields[4], total, int(own[11]) + int(own[12])  # utime + stime


def busy_elsewhere(before, after):
    """Cores kept busy by other programs between two _cpu_ticks() readings, or None if unknown."""
    if before is None or after is None:
        return None
    busy, total, own = (b - a for a, b in zip(before, after))
    return (busy - own) * (os.cpu_count() or 1) / total if total > 0 else None


def idle_cores(interval=0.1):
    """How many cores nothing else is using, from two readings of /proc/stat `interval` apart.

    Off Linux (no /proc/stat) every core counts as idle.
    """
    before = _cpu_ticks()
    time.sleep(interval)
    others = busy_elsewhere(before, _cpu_ticks())
    if others is None:
        return available_cores()
    return max(1, min(available_cores(), round((os.cpu_count() or 1) - others)))


class ThreadGovernor:
    """Follows the machine's load during a run: one BLAS thread while other programs keep a
    core busy, the chosen number again once they stop.

    A thread count chosen at the start is not enough: a browser or a compile that starts
    later makes OpenBLAS's spinning threads fight it, and a run slows many times over. Every
    `every` steps, tick() compares the machine's busy time with this process's own (its
    spinning threads included) since the last look; it costs two small file reads.
    """

    def __init__(self, wanted, every=500):
        self.wanted, self.every, self.current = wanted, every, wanted
        self.count, self.last = 0, _cpu_ticks()

    def tick(self):
        self.count += 1
        if self.wanted == 1 or self.count % self.every or self.last is None:
            return
        now = _cpu_ticks()
        others = busy_elsewhere(self.last, now)  # cores kept busy by other programs
        self.last = now if now is not None else self.last
        if others is None:
            return
        threads = 1 if others >= 0.5 else self.wanted
        if threads != self.current:
            self.current = threads
            blas_threads(threads)  # Trainer.close (or an enclosing blas_threads block) restores the count


def choose_threads(batch_size, n_in, n_hidden, vocab_size, cores=None):
    """BLAS threads for a model with these sizes: 1 unless its largest product is big enough to share,
    and never more than the cores that are idle right now (`cores`, measured when not given).

    On a busy machine OpenBLAS's threads spin against the other programs, so a run
    that starts on a busy machine keeps to one thread.
    """
    work = batch_size * max(n_in * n_hidden, n_hidden * vocab_size)  # multiply-adds of the largest product
    wanted = max(1, work // MIN_WORK_PER_THREAD)
    if wanted == 1:
        return 1
    return max(1, min(wanted, idle_cores() if cores is None else cores))


def blas_threads(n):
    """At most n BLAS threads, from this call on. As a context manager (`with blas_threads(n):`)
    the count the BLAS had before comes back at the block's end; called alone, it holds until an
    enclosing block ends."""
    return threadpool_limits(limits=n, user_api="blas")


# Rows each part of a batch needs before splitting the batch between threads (parallel.BatchSplit)
# beats sharing the products between BLAS threads. Measured side by side on the lecture's model,
# float32, two threads: parts of 256 rows 1.10x faster, 512 rows 1.27x, 2,048 rows 1.5x; and on
# the best preset (H=1024) at batch 128, parts of 64 rows 0.81x: there the products dominate.
MIN_ROWS_PER_PART = 256


def split_parts(batch_size, threads):
    """Into how many parts to split each batch when `threads` threads are to work on it: one
    per thread if every part gets at least MIN_ROWS_PER_PART rows, otherwise 1 (the threads
    then share the matrix products, as BLAS threads)."""
    return threads if threads > 1 and batch_size // threads >= MIN_ROWS_PER_PART else 1


def step_threads(batch_size, n_in, n_hidden, vocab_size, fold=False):
    """Threads for a training step: every core when the batch is long enough to split between
    them, busy machine or not, else what choose_threads gives the products; one for a folded
    first layer (folded.py), whose products are small: at the best preset's sizes two BLAS
    threads took 1,935 µs a step against 1,959 on one (docs/best.md), not worth a second core.
    (Measured there only: a folded model with a far wider output layer may want --threads.)

    The threads of a split batch sleep while they wait for each other, unlike OpenBLAS's,
    which spin: on a machine with one busy process per core, batch 1024 in float64 took
    6.6 ms split in two against 10.9 ms on one thread (python -m mlp_lm.bench --threads 2).
    """
    cores = available_cores()
    if split_parts(batch_size, cores) > 1:
        return cores
    return 1 if fold else choose_threads(batch_size, n_in, n_hidden, vocab_size)


def describe_threads(batch_size, threads):
    """For the progress header: '1 BLAS thread', '2 BLAS threads', or '2 threads, each batch
    split in 2 parts of one BLAS thread each'; for a --threads past the cores (flags.FewerThreads),
    with why there are fewer: '2 BLAS threads (--threads 3 asked for more than the 2 cores ...)'."""
    fewer = f" ({threads.why()})" if hasattr(threads, "why") else ""
    if split_parts(batch_size, threads) > 1:
        return f"{threads} threads, each batch split in {threads} parts of one BLAS thread each{fewer}"
    return f"{threads} BLAS thread{'s' if threads > 1 else ''}{fewer}"


def blas_description():
    """'openblas 0.3.31 (Haswell), 2 threads by default, OPENBLAS_THREAD_TIMEOUT=18' for the BLAS
    numpy uses, as threadpoolctl sees it (the variable as the process has it: set before numpy
    loaded OpenBLAS, as the commands set it, it is what OpenBLAS uses), and ', OPENBLAS_CORETYPE=Haswell'
    where the environment names the kernels OpenBLAS is to run instead of those it picks for the
    processor (a machine of ours set Haswell's, AVX2, on an AVX-512 processor: docs/performance.md)."""
    from threadpoolctl import threadpool_info
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not infos:
        return "no BLAS found by threadpoolctl"
    i = infos[0]
    arch = f" ({i['architecture']})" if i.get("architecture") else ""
    text = f"{i.get('internal_api')} {i.get('version')}{arch}, {i.get('num_threads')} threads by default"
    if i.get("internal_api") == "openblas":  # how long its idle workers spin (mlp_lm/__init__.py sets it)
        text += f", {BLAS_SPIN_VARIABLE}={os.environ.get(BLAS_SPIN_VARIABLE, 'unset')}"
        if os.environ.get(CORETYPE_VARIABLE):  # kernels chosen by the user, not by OpenBLAS for this processor
            text += f", {CORETYPE_VARIABLE}={os.environ[CORETYPE_VARIABLE]}"
    return text


def machine_description(noun=""):
    """'2-core x86_64 Linux (AMD EPYC, AVX-512), Python 3.11.7, numpy 2.4.6': what a timing was taken on,
    for the bench's header and the results table (the same machine line in both); with a noun after the
    system, for a sentence: '2-core x86_64 Linux machine (AMD EPYC, ...'."""
    cpu = cpu_description()
    return (f"{available_cores()}-core {platform.machine()} {platform.system()}{f' {noun}' if noun else ''}"
            f"{f' ({cpu})' if cpu else ''}, Python {platform.python_version()}, numpy {np.__version__}")


def cpu_description(cpuinfo=None):
    """'AMD EPYC, AVX-512' from /proc/cpuinfo (or the text given): the processor's name and its
    widest vector instructions, which decide how fast numpy's loops and the BLAS run. '' if unknown.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else ""
    return ", ".join(part for part in (fields.get("model name", ""), vectors) if part)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's malloc.h
KEEP_BYTES = 32 * 1024 * 1024  # blocks up to 32 MB (glibc's largest mmap threshold) come from the reused heap


def keep_freed_memory():
    """Make glibc's malloc reuse freed blocks up to KEEP_BYTES instead of unmapping them. Returns
    whether it took effect (False off glibc)."""
    try:
        # The symbols the process has loaded, the C library's among them: ctypes.util.find_library("c")
        # would run /sbin/ldconfig, a process of its own, at the start of every command.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * KEEP_BYTES))


class NotEnoughMemory(MemoryError):
    """Sizes the machine cannot hold, found before the work starts; the message says how much is needed."""


def available_memory():
    """Bytes the machine can give this process now (MemAvailable in /proc/meminfo; the physical
    memory where there is no /proc), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def gib(n_bytes, decimals=None):
    """A size for a message, in the unit that shows it: 1.5 GiB, 300 MiB, 117 KiB, 11 bytes. With decimals, that
    many in every unit, and the larger unit for what rounds to 1 of it: disk room, where a free size and a needed
    one are set side by side (56.0 KiB against 92.1; 1.0 MiB, not 1,024.0 KiB, for 2**20 - 1 bytes; a hostile
    tester's 56 KB free against 92 needed read "0.1 MB free, and this run's files need about 0.1 MB")."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        places = (1 if unit == "GiB" else 0) if decimals is None else decimals
        if n_bytes >= scale or (decimals is not None and scale > 2**10 and round(n_bytes / scale, places) >= 1):
            return f"{n_bytes / scale:,.{places}f} {unit}"
    return f"{n_bytes:,} byte{'s' if n_bytes != 1 else ''}"


def check_fits(n_bytes, what, advice, available=None):
    """Raise NotEnoughMemory if `what` needs more than the machine has available, before it is tried."""
    available = available_memory() if available is None else available
    if available is not None and n_bytes > available:
        raise NotEnoughMemory(f"{what} needs about {gib(n_bytes)} of memory and this machine has "
                              f"{gib(available)} available; {advice}")
