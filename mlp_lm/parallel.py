"""Data parallelism: one minibatch's loss and gradients computed in parts, on several threads.

The loss is a mean over the batch, so splitting the batch into parts of B_1 + ... + B_k = B
rows gives

    L = sum_i (B_i / B) * L_i        dL/dtheta = sum_i (B_i / B) * dL_i/dtheta

where L_i is the mean loss of part i. Each part runs model.loss_and_grads, the very same
code as the whole batch; only the order of the float additions over the batch changes.

Why threads help: numpy lets go of Python's lock inside its matrix products and its
elementwise loops (tanh, exp), which is where a large batch spends its time. The BLAS can
share a product between threads, but nothing shares numpy's single-threaded tanh and exp;
splitting the batch shares everything. Each part runs with one BLAS thread.
"""
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import model
from .checks import check_indices, is_whole
from .cli import UsageError


@functools.lru_cache(maxsize=16)
def layout(parts, B):
    """The row slices of `parts` near-equal parts of a batch of B rows, and their weights B_i / B
    (Python floats, so float32 gradients stay float32); worked out once per batch size."""
    cuts = np.linspace(0, B, parts + 1).round().astype(int)
    rows = tuple(slice(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]))
    return rows, tuple(float(n) / B for n in np.diff(cuts))


class BatchSplit:
    """Computes model.loss_and_grads in `parts` row blocks, one on the calling thread and the
    others on a pool of parts - 1 threads. With parts == 1 it is model.loss_and_grads itself.
    """

    def __init__(self, parts=1):
        if not is_whole(parts):
            raise ValueError(f"parts must be a whole number of at least 1, got {parts!r}")
        self.parts = parts
        self.pool = None
        if parts > 1:
            self.pool = ThreadPoolExecutor(parts - 1, thread_name_prefix="mlp_lm-part")
            self._start_threads()

    def _start_threads(self):
        """Start every thread now, each held at a barrier until all are up: a machine that cannot
        start them says so before training, not steps into it (the pool would start them lazily)."""
        everyone = threading.Barrier(self.parts)
        try:
            for _ in range(self.parts - 1):
                self.pool.submit(everyone.wait)
        except RuntimeError as e:  # "can't start new thread": out of memory or of processes
            everyone.abort()  # the threads already started stop waiting
            self.close()
            raise UsageError(f"cannot start {self.parts - 1} threads to split each batch ({e}); "
                             f"use fewer --threads") from None
        everyone.wait()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def loss_and_grads(self, params, X, Y, ix, *, masks=None, smoothing=0.0, fold=False):
        """model.loss_and_grads(params, X[ix], Y[ix], masks=masks, smoothing=smoothing, fold=fold), in parts.

        Each part gathers its own examples X[ix[rows]] and weighs its own loss and gradients
        by B_i / B: the gather reads memory at random, and both are worth sharing between the
        threads too. The calling thread then only adds the parts up.

        ix: (B,) row indices of X and Y, B >= 1, in 0..N-1 (a bool mask would be read as the rows 0
        and 1, and a -1 as the last row, without a word).
        """
        if type(ix) is not np.ndarray or ix.ndim != 1 or not len(ix):
            raise ValueError(f"ix must be a 1-D numpy array of B >= 1 row indices, got {type(ix).__name__} of shape "
                             f"{np.shape(ix)}")
        check_indices(ix, len(Y), "ix", "row indices")
        if len(X) != len(Y):  # else a row past X's end is an IndexError, or X's rows pair with other rows' targets
            raise ValueError(f"X and Y must hold the same examples, one row each, got {len(X)} and {len(Y)} rows")
        parts = min(self.parts, len(ix))
        if parts == 1:
            # X[ix] and Y[ix], by ndarray.take: at batch 32 the same rows a few microseconds sooner
            return model.loss_and_grads(params, X.take(ix, axis=0), Y.take(ix), masks=masks, smoothing=smoothing,
                                        fold=fold)
        if self.pool is None:  # its threads are gone (close(), Trainer.close): say so, not NoneType's words
            raise ValueError("this split of the batch is closed, and its threads gone; make a new Trainer to train on")
        masks = model.check_masks(masks, len(ix), fold)  # before the parts slice them (one piece: forward checks)
        rows, weights = layout(parts, len(ix))

        def part(r, weight):
            # fold's mask on C is the step's, the same for every part; the others have a row an example
            part_masks = {k: m if k in model.STEP_MASKS else m[r] for k, m in masks.items() if m is not None}
            part_ix = ix[r]
            loss, grads = model.loss_and_grads(params, X.take(part_ix, axis=0), Y.take(part_ix), masks=part_masks,
                                               smoothing=smoothing, fold=fold)
            for g in grads.values():
                g *= weight
            return weight * loss, grads

        errors = np.geterr()  # the caller's np.errstate, which numpy keeps per thread

        def worker_part(r, weight):
            with np.errstate(**errors):  # an overflow in any part raises, as it would in one piece
                return part(r, weight)

        futures = [self.pool.submit(worker_part, r, w) for r, w in zip(rows[1:], weights[1:])]
        loss, grads = part(rows[0], weights[0])
        for f in futures:
            part_loss, part_grads = f.result()
            loss += part_loss
            for k, g in grads.items():
                g += part_grads[k]
        return float(loss), grads
