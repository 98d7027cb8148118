"""One training run's moving parts: the step, with the state a resumed run continues from
(its configuration is config.py's Config).

loop.py repeats the step; bench.py (the benchmark) drives a Trainer, so it times exactly the
step that training runs.
"""
import json
import math

import numpy as np

from . import bounds, layers, model, optim, parallel, runtime
from .checks import is_whole, some
from .config import config_problem, params_problem, plain
from .params import param_count


BLOCK = 256  # minibatches of indices drawn at once
BLOCK_ENTRIES = 1 << 20  # but no more indices than this (8 MB; the block goes into every saved training state)


def block_rows(batch_size):
    """How many steps' minibatch indices to draw at once: BLOCK, or fewer for a batch so long that
    BLOCK of them would pass BLOCK_ENTRIES (batch 100,000: 10 rows, not 205 MB), and one step's
    worth for a batch longer than BLOCK_ENTRIES itself. The generator's stream runs on from one
    draw to the next, so the indices are the same whatever the block's size."""
    return max(1, min(BLOCK, BLOCK_ENTRIES // batch_size))


def memory_needed(cfg, V):
    """Bytes a training run of cfg on a vocabulary of V symbols holds at its peak, roughly: the
    parameters (with their gradients, optimiser state, weight average, the model --keep-best keeps
    and the update's temporaries), one step's activations and their gradients, the minibatch indices
    drawn ahead, the evaluation chunk and the loss history; with dev evaluations, a copy of the state at the best of them (what
    loop.train keeps should the run diverge)."""
    T, E, H, B = cfg.block_size, cfg.n_embd, cfg.n_hidden, cfg.batch_size
    size = np.dtype(cfg.dtype).itemsize
    n_params = param_count(V, T, E, H, cfg.direct)
    # parameters, moments, average, the model of the best dev evaluation
    state = 1 + (2 if cfg.optimizer == "adamw" else 0) + (1 if cfg.ema else 0) + (1 if cfg.keep_best else 0)
    copies = 3 + state + (state if cfg.eval_every else 0) + (1 if cfg.ema else 0)  # (the average's scratch)
    activations = B * (4 * T * E + 5 * H + 6 * V) + min(B * T * V, layers.ONEHOT_MAX)  # and the one-hot of dC
    if cfg.fold:  # the tables and their gradients (T*V, H), with Wd's (T*V, V), and each position's C and its
        # gradient, made in each part of a split batch at once (at most one part a core)
        parts = runtime.split_parts(B, runtime.available_cores())
        activations += 2 * T * V * (H + (V if cfg.direct else 0) + E) * parts
    block = 8 * block_rows(B) * B * (2 if cfg.eval_every else 1)  # the minibatch indices drawn ahead, int64
    return (n_params * copies + activations) * size + block + model.EVAL_BYTES + 8 * cfg.steps


def is_count(a):
    """Whether a saved array is a single whole number, as a step count or a position is saved."""
    a = np.asarray(a)
    return a.shape == () and a.dtype.kind in "iu"


class Trainer:
    """Holds what changes from step to step: parameters, optimiser state, weight average, random streams.

    Its cfg is config.plain(cfg), a copy with numpy scalars as Python values; the caller's is untouched.
    """

    def __init__(self, cfg, params, X, Y, threads=1, fixed_threads=0):
        cfg, X, Y = plain(cfg), np.asarray(X), np.asarray(Y)
        problem = config_problem(cfg) or params_problem(cfg, params, X, Y)
        if not is_whole(threads):
            problem = problem or f"threads is {threads!r}, not a whole number of at least 1"
        if problem:  # the command line has refused all of these already; a caller of the library may not have
            raise ValueError(problem)
        threads = int(threads)
        self.cfg, self.params, self.X, self.Y = cfg, params, X, Y
        # Batches long enough are split in parts, one per thread, each on one BLAS thread
        # (runtime.split_parts); otherwise the threads share the matrix products as BLAS threads.
        # Splitting changes only the order of float additions over the batch.
        self.split = parallel.BatchSplit(runtime.split_parts(cfg.batch_size, threads))
        self.blas = runtime.blas_threads(1 if self.split.parts > 1 else threads)  # close() gives back the caller's
        self.rng = np.random.default_rng([cfg.seed, 1])  # minibatches: a stream separate from the init
        self.drop_rng = np.random.default_rng([cfg.seed, 3])  # dropout masks: their own stream
        self.dtype = np.dtype(cfg.dtype)
        self.opt = optim.make_optimizer(cfg.optimizer, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps)
        self.ema = optim.EMA(params, cfg.ema) if cfg.ema else None
        self.block, self.block_pos = None, 0  # minibatch indices, drawn block_rows(B) steps at a time
        # (step, parameters evaluated there): with cfg.keep_best, the model of the best dev evaluation so
        # far, which loop.train sets; the run goes on from its own parameters, and saves this model
        self.best = None
        self.checked_seconds = 0.0  # a resumed run's check of its kept model (loop.train): no training step
        # the thread count the run was given (--threads), saved with it for its --resume to use again (two BLAS
        # threads can round a large model's products otherwise than one); 0: chosen by the machine's load
        self.fixed_threads = fixed_threads

    def close(self):
        """The steps are over: let the split's threads go, and give the BLAS the thread count it had
        before this Trainer (a notebook that trained would otherwise keep one thread for good)."""
        self.split.close()
        self.blas.restore_original_limits()

    def state(self, copy=True):
        """Everything a later run needs to continue exactly where this one stopped, as arrays.

        The random generators' states go as JSON text; the raw parameters go too,
        since a checkpoint's parameters are the weight average when there is one.
        Every array is a copy, so a state kept while training goes on stays the state it was;
        copy=False gives the live arrays, for a caller that writes them out before the next
        step (train's save: the copies would be four parameter-sized arrays more at its peak).
        """
        st = {"rng": np.array(json.dumps(self.rng.bit_generator.state)),
              "drop_rng": np.array(json.dumps(self.drop_rng.bit_generator.state)),
              "block": self.block if self.block is not None else np.zeros((0, self.cfg.batch_size), np.int64),
              "block_pos": np.array(self.block_pos)}
        st.update({f"param.{k}": p for k, p in self.params.items()})
        st.update({f"opt.{k}": np.asarray(v) for k, v in self.opt.state().items()})
        if self.ema:
            st.update({f"ema.{k}": a for k, a in self.ema.avg.items()})
        if self.best is not None:
            st["best_step"] = np.array(self.best[0])
            st.update({f"best.{k}": a for k, a in self.best[1].items()})
        return {k: np.array(a, copy=True) for k, a in st.items()} if copy else st  # the live ones move on

    def load_state(self, st, steps=None):
        """Continue from state(): the parameters, optimiser, weight average and random streams.

        steps: how many steps the saved run took (AdamW's step counter t must say the same).
        Raises ValueError (or KeyError, TypeError) for a state this configuration could not have
        saved: other arrays than its optimiser and weight average keep, or arrays of another
        shape or dtype, or values no training reaches (NaN, infinities, bounds.magnitude_problem).
        """
        self.check_state(st, steps)
        for rng, key in ((self.rng, "rng"), (self.drop_rng, "drop_rng")):
            try:
                saved = json.loads(str(st[key]))
            except ValueError as e:
                raise ValueError(f"the random stream's state in {key} is not JSON ({e})") from None
            rng.bit_generator.state = saved
            if rng.bit_generator.state != saved:  # numpy took it, rounded (a state of 1.5 becomes 1)
                raise ValueError(f"the random stream's state in {key} is not one a generator has")
        self.block = st["block"] if len(st["block"]) else None
        if not is_count(st["block_pos"]):
            raise ValueError("the position in the saved minibatch indices is not a whole number")
        self.block_pos = int(st["block_pos"])
        if self.block is None and self.block_pos != 0:  # no block saved: none had been drawn yet
            raise ValueError("a position in saved minibatch indices that are not there")
        if self.block is not None and (
                self.block.dtype.kind not in "iu" or self.block.ndim != 2
                or self.block.shape[1] != self.cfg.batch_size or not 0 <= self.block_pos <= len(self.block)
                or self.block.min() < 0 or self.block.max() >= len(self.Y)):
            raise ValueError("the saved minibatch indices do not fit this run")
        for k in self.params:
            self.params[k][...] = st[f"param.{k}"]
        self.opt.load_state({k[4:]: v for k, v in st.items() if k.startswith("opt.")})
        if self.ema:
            for k in self.ema.avg:
                self.ema.avg[k][...] = st[f"ema.{k}"]
        self.best = (int(st["best_step"]), {k: np.array(st[f"best.{k}"]) for k in self.params}) if (
            "best_step" in st) else None

    def check_state(self, st, steps=None):
        """Raise ValueError unless `st` holds exactly the tensors this configuration saves, each finite,
        of its parameter's shape and of the run's dtype (see load_state)."""
        cfg, adamw = self.cfg, self.cfg.optimizer == "adamw"
        best = any(k == "best_step" or k.startswith("best.") for k in st)  # --keep-best's, from the first dev loss on
        kinds = ("param", *(("opt.m", "opt.v") if adamw else ()), *(("ema",) if self.ema else ()),
                 *(("best",) if best and cfg.keep_best else ()))
        tensors = {f"{kind}.{k}": p for kind in kinds for k, p in self.params.items()}
        wanted = set(tensors) | ({"opt.t"} if adamw else set()) | ({"best_step"} if cfg.keep_best and best else set())
        saved = {k for k in st if k.startswith(("param.", "opt.", "ema.", "best.", "best_step"))}
        if saved != wanted:  # e.g. an SGD run's state under a config that says adamw
            run = (f"an {cfg.optimizer} run{' with --ema' if self.ema else ''}"
                   f"{' with --keep-best' if cfg.keep_best else ''}")
            odd = [f"lacks {some(wanted - saved)}, which {run} saves"] if wanted - saved else []
            odd += [f"holds {some(saved - wanted)}, which {run} does not save"] if saved - wanted else []
            raise ValueError(f"it {' and '.join(odd)}: the state does not match its config")
        for name, p in tensors.items():
            a = st[name]
            if a.shape != p.shape or a.dtype != self.dtype:
                raise ValueError(f"{name} is {a.dtype} {a.shape}, not the run's {self.dtype} {p.shape}")
            bad = ("NaN or infinite" if not np.all(np.isfinite(a)) else
                   "negative" if name.startswith("opt.v.") and a.min(initial=0) < 0 else None)  # v averages g^2
            if bad:
                raise ValueError(f"{name} holds {bad} values, which no training step leaves")
        for kind in ("param", *(("ema",) if self.ema else ()), *(("best",) if "best" in kinds else ())):
            problem = bounds.magnitude_problem({k: st[f"{kind}.{k}"] for k in self.params})
            if problem:
                raise ValueError(f"{kind}: {problem}")
        if "best" in kinds and (not is_count(st["best_step"]) or int(st["best_step"]) < 1 or (
                steps is not None and int(st["best_step"]) > steps)):
            raise ValueError(f"the step of the best dev evaluation's model is {st['best_step'].tolist()!r}, "
                             + (f"not one of the run's {steps} steps" if steps is not None else "not a step count"))
        if adamw:
            t = st["opt.t"]
            if not is_count(t) or int(t) < 1 or (steps is not None and int(t) != steps):
                raise ValueError(f"AdamW's step counter t is {t.tolist()!r}, "
                                 + (f"but the run took {steps} steps" if steps is not None else "not a step count"))
            K = optim.moment_bound(cfg.beta1, cfg.beta2, int(t))
            for k in self.params if math.isfinite(K) else ():  # 1% for rounding; below 1e-15 nothing moves
                m, v = (st[f"opt.{x}.{k}"].astype(np.float64) for x in "mv")
                if np.any(np.abs(m) > 1.01 * np.sqrt(K * v) + 1e-15):
                    raise ValueError(f"opt.m.{k} is larger than any gradients could make it beside opt.v.{k} "
                                     f"(|m| <= {math.sqrt(K):.3g} sqrt(v) after {int(t)} steps)")

    @property
    def evaluated(self):
        """The parameters to evaluate and save: the weight average when there is one."""
        return self.ema.avg if self.ema else self.params

    def step(self, step):
        """Step number `step` (0-based): a minibatch, its loss and gradients, the update. Returns the loss.

        Raises FloatingPointError when the loss is not finite (and, under
        np.errstate(over="raise"), when any arithmetic overflows).
        """
        cfg = self.cfg
        B = cfg.batch_size
        if self.block is None or self.block_pos == len(self.block):
            # One draw for many steps costs a fraction of many draws, and yields the very same
            # indices: the generator fills the block row by row, as it would step by step.
            self.block, self.block_pos = self.rng.integers(0, len(self.Y), size=(block_rows(B), B)), 0
        ix = self.block[self.block_pos]  # (B,); used up once the step is done, at its end
        masks = {}  # dropout's, drawn only where there is dropout (the lecture's model has none)
        drawn_from = self.drop_rng.bit_generator.state if cfg.emb_dropout or cfg.dropout else None
        try:
            if cfg.emb_dropout:
                key, shape = model.embedding_mask_shape(B, cfg.block_size, len(self.params["C"]), cfg.n_embd, cfg.fold)
                masks[key] = layers.dropout_mask(shape, cfg.emb_dropout, self.drop_rng, self.dtype)
            if cfg.dropout:
                masks["h"] = layers.dropout_mask((B, cfg.n_hidden), cfg.dropout, self.drop_rng, self.dtype)
            loss, grads = self.split.loss_and_grads(self.params, self.X, self.Y, ix, masks=masks,
                                                    smoothing=cfg.label_smoothing, fold=cfg.fold)
        except MemoryError:  # the step is not taken, so its masks are not drawn either: the state saved (loop.train)
            if drawn_from is not None:  # is that of the steps done, and --resume draws them again, as in one go
                self.drop_rng.bit_generator.state = drawn_from
            raise
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss {loss}")
        lr = optim.learning_rate(cfg.schedule, cfg.lr, step, cfg.steps, decay_rate=cfg.decay_rate,
                                 warmup=cfg.warmup, min_lr=cfg.min_lr)
        self.opt.step(self.params, grads, lr)
        if self.ema:
            self.ema.update(self.params)
        self.block_pos += 1  # only now: a step stopped part-way (an exception) leaves its indices for the next try
        return loss
