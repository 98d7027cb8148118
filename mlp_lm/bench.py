"""Time the training step, side by side with PyTorch when it is installed, idle and under load.

    python -m mlp_lm.bench                  # the full table (under a minute)
    python -m mlp_lm.bench --quick          # a tiny version, in seconds
    python -m mlp_lm.bench --json out.json

On the lecture's model (V=27, T=3, E=10, H=200) it times one training step
(minibatch sampling, forward, backward, update: exactly trainer.Trainer.step)
at several batch sizes, in float32 and float64, as the median over at least
--seconds of work per size; the same step in PyTorch (eager autograd and
torch.optim.SGD, same sizes, dtype and thread count) when torch is importable;
the time of the loss on the dev split; the step's six matrix products alone at
batch 1024, by numpy's BLAS and by torch, one thread each; then both steps again
with one busy process per core, started by the bench for that part. Ratios are of
numbers measured in this one run, so the machine's noise mostly cancels. Numbers
from different runs or machines are not comparable.
Last, data at scale: a generated file of 1,000,000 items is read, encoded and
split in a fresh process, which reports its time and peak memory (scale.py).
"""
import importlib.util
import multiprocessing
import os
import signal
import statistics
import sys
import time

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.bench", file=sys.stderr)
    sys.exit(2)

from . import model, runtime
from .cli import ArgumentParser, UsageError, current_directory_gone, run, signals_held
from .flags import int_at_least, positive_float, thread_count
from .data import load_splits
from .jsonout import prepare_json, write_json
from .scale import MAX_ITEMS, check_room, data_at_scale
from .config import Config
from .trainer import Trainer
from .wordfile import DEFAULT_DATA, in_checkout

V, T, E, H = 27, 3, 10, 200


def flops_per_step(B, V=V, T=T, E=E, H=H):
    """Multiply-adds times 2 of the matrix products: forward (2) + backward (dx and dW, 4) per product."""
    return 6 * B * (T * E * H + H * V)


def median_time(fn, seconds):
    """Median seconds per call of fn, over samples of at least 10 ms each, for at least `seconds` in all."""
    for _ in range(3):  # warm-up: caches, allocator, BLAS threads
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(0.01 / one))  # calls per sample, so the clock's resolution does not matter
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 5:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)


def our_step(splits, B, dtype, threads=1):
    cfg = Config(batch_size=B, dtype=dtype, steps=10**9)
    params = model.init_params(V, T, E, H, seed=0, dtype=np.dtype(dtype))
    trainer = Trainer(cfg, params, *splits.train, threads)  # as train runs it: split or BLAS threads
    counter = iter(range(10**12))
    return lambda: trainer.step(next(counter))


def torch_step(splits, B, dtype):
    import torch
    import torch.nn.functional as F

    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    X, Y = (torch.from_numpy(a) for a in splits.train)
    p = model.init_params(V, T, E, H, seed=0, dtype=np.dtype(dtype))
    C, W1, b1, W2, b2 = (torch.tensor(p[k], dtype=tdtype, requires_grad=True) for k in ("C", "W1", "b1", "W2", "b2"))
    opt = torch.optim.SGD([C, W1, b1, W2, b2], lr=0.01)
    gen = torch.Generator().manual_seed(0)

    def step():
        ix = torch.randint(0, len(Y), (B,), generator=gen)
        emb = C[X[ix]]  # (B, T, E)
        h = torch.tanh(emb.view(B, -1) @ W1 + b1)
        loss = F.cross_entropy(h @ W2 + b2, Y[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def product_seconds(B, seconds, with_torch):
    """The lecture step's six matrix products alone, batch B, float32, one thread: (numpy's seconds, torch's
    or None). At large batches they are half of the step or more, so this tells how much of a gap to
    PyTorch is the BLAS library that came with numpy rather than our code."""
    rng = np.random.default_rng(0)
    shapes = {"embcat": (B, T * E), "W1": (T * E, H), "h": (B, H), "W2": (H, V), "dlogits": (B, V), "dh": (B, H)}
    a = {k: rng.standard_normal(shape, dtype=np.float32) for k, shape in shapes.items()}

    def six(embcat, W1, h, W2, dlogits, dh):  # forward, then each layer's two backward products
        return embcat @ W1, h @ W2, dlogits @ W2.T, h.T @ dlogits, dh @ W1.T, embcat.T @ dh

    with runtime.blas_threads(1):
        ours = median_time(lambda: six(**a), seconds)
    if not with_torch:
        return ours, None
    import torch
    t, threads = {k: torch.from_numpy(x) for k, x in a.items()}, torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ours, median_time(lambda: six(**t), seconds)
    finally:
        torch.set_num_threads(threads)


def torch_available():
    try:
        import torch  # noqa: F401 (only whether it imports)
    except ImportError:
        return False
    return True


def _spin(bench):  # a busy process: what a browser tab or a compile does to the machine
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: just stop when told
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C (and a hangup) are for the bench, which stops us itself
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # the bench's pid, passed in: one read here could already be init's, were the bench gone
    while os.getppid() == bench:  # a bench killed outright (SIGKILL) cannot stop us: we stop with it
        for _ in range(100_000):
            pass


class BusyMachine:
    """One CPU-bound process per core for the duration of the block; always stopped afterwards."""

    def __init__(self, n):
        self.procs = [multiprocessing.get_context("fork").Process(target=_spin, args=(os.getpid(),), daemon=True)
                      for _ in range(n)]

    def __enter__(self):
        # A stop signal waits until all are started (one inside a fork would be lost in its hooks),
        # and then stops those started, never leaving one spinning.
        with signals_held() as held:
            try:
                for p in self.procs:
                    p.start()
            except BaseException:
                self.__exit__()
                raise
        if held:
            self.__exit__()
            raise held[0]
        time.sleep(0.2)  # let them reach full speed
        return self

    def __exit__(self, *exc):
        started = [p for p in self.procs if p.pid is not None]
        for p in started:
            p.terminate()
        for p in started:
            p.join(timeout=2)
            if p.is_alive():  # told before it had set its own handlers: the parent's held the signal
                p.kill()
                p.join()


def measure(splits, sizes, dtypes, seconds, n_threads, with_torch):
    """{(dtype, B): {"ours": s, "torch": s or None, "threads": n, "parts": k}} for every size and dtype
    (k > 1: each batch split in k parts, one per thread; see parallel.py)."""
    rows = {}
    for dtype in dtypes:
        for B in sizes:
            n = n_threads or runtime.step_threads(B, T * E, H, V)
            with runtime.blas_threads(n):
                ours = median_time(our_step(splits, B, dtype, n), seconds)
            theirs = None
            if with_torch:
                import torch
                torch.set_num_threads(n)
                theirs = median_time(torch_step(splits, B, dtype), seconds)
            rows[(dtype, B)] = {"ours": ours, "torch": theirs, "threads": n, "parts": runtime.split_parts(B, n)}
    return rows


def table(rows, title, idle=None):
    lines = [title, f"{'dtype':8} {'batch':>6} {'thr':>3} {'parts':>5} {'ours us/step':>13} {'GFLOP/s':>8} "
                    f"{'torch us/step':>14} {'torch/ours':>10}" + (f" {'vs idle':>8}" if idle else "")]
    for (dtype, B), r in rows.items():
        gflops = flops_per_step(B) / r["ours"] / 1e9
        torch_us = f"{r['torch'] * 1e6:14,.0f}" if r["torch"] else f"{'-':>14}"
        ratio = f"{r['torch'] / r['ours']:9.2f}x" if r["torch"] else f"{'-':>10}"
        line = f"{dtype:8} {B:6d} {r['threads']:3d} {r['parts']:5d} {r['ours'] * 1e6:13,.0f} {gflops:8.2f} {torch_us} {ratio}"
        if idle:
            line += f" {r['ours'] / idle[(dtype, B)]['ours']:7.2f}x"
        lines.append(line)
    return "\n".join(lines)


MAX_SECONDS = 60  # per measurement: 16 measurements of a minute each, idle and loaded, are over half an hour


def main(argv=None):
    ap = ArgumentParser(prog="python -m mlp_lm.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tiny version: two sizes, float32, 0.05 s each")
    ap.add_argument("--seconds", metavar="S", type=positive_float, default=None,
                    help=f"work timed per measurement, at most {MAX_SECONDS:g} (default 1, 0.05 with --quick)")
    ap.add_argument("--threads", metavar="N", type=thread_count, default=None,
                    help="our (and torch's) threads for every size, at most the machine's cores (default: chosen by size, see mlp_lm/runtime.py)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    ap.add_argument("--no-load", action="store_true", help="skip the measurements under load")
    ap.add_argument("--data", metavar="PATH", default=str(in_checkout(DEFAULT_DATA)), help="the word list (default data/names.txt)")
    ap.add_argument("--items", metavar="N", type=int_at_least(10, f"a number of items from 10 to {MAX_ITEMS:,}", MAX_ITEMS),
                    default=None,
                    help="items in the generated file that is loaded and split (default 1,000,000; 20,000 with --quick)")
    ap.add_argument("--json", metavar="PATH", default=None, help="also write the tables to this JSON file")
    args = ap.parse_args(argv)
    if args.seconds is not None and args.seconds > MAX_SECONDS:
        raise UsageError(f"--seconds {args.seconds:g} is more than a measurement needs; use at most {MAX_SECONDS:g} "
                         f"(the default 1 s already gives steady medians)")
    if args.json is not None:
        prepare_json(args.json)  # before the work, not after it
    items = args.items or (20_000 if args.quick else 1_000_000)
    check_room(items)  # before the measurements, not minutes into them
    seconds = args.seconds or (0.05 if args.quick else 1.0)
    sizes = (32, 256) if args.quick else (32, 256, 1024, 4096)
    dtypes = ("float32",) if args.quick else ("float32", "float64")
    if not args.no_torch and current_directory_gone() and importlib.util.find_spec("torch") is not None:
        # torch's own libraries would end the process with a fatal error of theirs (cli.run adds the rest)
        raise UsageError("torch cannot load while the current directory is gone; pass --no-torch")
    with_torch = not args.no_torch and torch_available()  # --no-torch: not even imported
    splits = load_splits(args.data, T)
    if len(splits.vocab) > V:  # the lecture's model has V rows in C: more symbols would index past them
        raise UsageError(f"--data {args.data} has {len(splits.vocab) - 1} symbols besides the boundary; the bench times "
                         f"the lecture's model, which has room for {V - 1} (names.txt's letters): pass a word list "
                         f"with at most {V - 1}")
    cores = runtime.available_cores()
    machine = f"{runtime.machine_description()}, {runtime.blas_description()}"
    if with_torch:
        import torch
        machine += f", torch {torch.__version__}"
    print(f"machine: {machine}")
    print(f"model: V={V} T={T} E={E} H={H}; each number is the median over >= {seconds:g} s of steps")
    if hasattr(args.threads, "why"):  # flags.FewerThreads: else the thr column shows fewer, unexplained
        print(f"threads: {args.threads} at every size ({args.threads.why()})")

    t0 = time.perf_counter()
    idle = measure(splits, sizes, dtypes, seconds, args.threads, with_torch)
    without = " (--no-torch: no comparison)" if args.no_torch else " (torch not installed: no comparison)"
    print(table(idle, "\ntraining step, idle machine" + ("" if with_torch else without)))
    params = model.init_params(V, T, E, H, seed=0)
    with runtime.blas_threads(args.threads or runtime.choose_threads(len(splits.dev[1]), T * E, H, V)):
        dev_seconds = median_time(lambda: model.split_loss(params, *splits.dev), seconds)
    print(f"\ndev loss over all {len(splits.dev[1]):,} dev examples: {dev_seconds * 1e3:.1f} ms")
    product_batch = sizes[-1] if args.quick else 1024
    products = product_seconds(product_batch, seconds, with_torch)
    flops = flops_per_step(product_batch)
    print(f"the step's six matrix products alone, batch {product_batch}, float32, one thread: numpy "
          f"{products[0] * 1e6:,.0f} us ({flops / products[0] / 1e9:.1f} GFLOP/s)"
          + (f", torch {products[1] * 1e6:,.0f} us ({flops / products[1] / 1e9:.1f} GFLOP/s), torch/ours "
             f"{products[1] / products[0]:.2f}x" if products[1] else ""))
    loaded = None
    if not args.no_load:
        with BusyMachine(cores):
            loaded = measure(splits, sizes, dtypes, seconds, args.threads, with_torch)
        print(table(loaded, f"\ntraining step, {cores} busy process(es), one per core", idle))
    scale = data_at_scale(items)
    print(f"\ndata at scale: {scale['items']:,} random items of 1-64 letters ({scale['file_bytes'] / 2**20:,.0f} MiB) "
          f"read, encoded and split in {scale['seconds']:.1f} s; peak memory {scale['peak_rss_bytes'] / 2**20:,.0f} MiB "
          f"for {scale['example_bytes'] / 2**20:,.0f} MiB of examples (T=3)")
    print(f"\nbench took {time.perf_counter() - t0:.0f} s")

    if args.json is not None:
        def flat(rows):
            return [{"dtype": d, "batch": B, "threads": r["threads"], "parts": r["parts"], "ours_seconds": r["ours"],
                     "torch_seconds": r["torch"], "gflops": flops_per_step(B) / r["ours"] / 1e9}
                    for (d, B), r in rows.items()]
        doc = {"machine": machine, "seconds_per_measurement": seconds, "idle": flat(idle),
               "dev_eval_seconds": dev_seconds,
               "products": {"batch": product_batch, "ours_seconds": products[0], "torch_seconds": products[1]},
               "loaded": flat(loaded) if loaded else None, "data_at_scale": scale}
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    run(main, "python -m mlp_lm.bench")
