"""A training run's configuration: its settings, the presets, and the checks that the settings
make sense together and fit the parameters and examples they are given.

trainer.py runs a Config; train_flags.py builds one from the command line, resume.py from a
saved run.
"""
import dataclasses
import math

import numpy as np

from . import model, optim
from .checks import check_indices, is_whole
from .wordfile import DEFAULT_DATA


@dataclasses.dataclass
class Config:
    data: str = DEFAULT_DATA  # one item per line (the default is found in the checkout from anywhere)
    block_size: int = 3  # T: how many previous symbols the model sees
    n_embd: int = 10  # E: size of each symbol's embedding
    n_hidden: int = 200  # H: tanh units in the hidden layer
    direct: bool = False  # the paper's direct connections from the embeddings to the logits
    init: str = "scaled"  # "scaled" (part 3 fix) or "lecture" (part 2's plain normal)
    steps: int = 200000  # optimiser steps
    batch_size: int = 32  # B: examples per step
    optimizer: str = "sgd"  # "sgd" or "adamw"
    lr: float = 0.1  # peak learning rate
    schedule: str = "step"  # "step" (lecture), "inverse" (paper) or "cosine"
    decay_rate: float = 0.0  # r of the inverse schedule lr / (1 + r t)
    warmup: int = 0  # linear warm-up steps of the cosine schedule
    min_lr: float = 0.0  # where the cosine schedule ends
    weight_decay: float = 0.0  # lambda: on weights and embeddings, never biases
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.999  # AdamW's second-moment decay
    eps: float = 1e-8  # AdamW's denominator guard
    dropout: float = 0.0  # dropout on the hidden layer's output
    emb_dropout: float = 0.0  # dropout on the concatenated embeddings
    fold: bool = False  # train the first layer from per-position tables of C @ W1 (folded.py)
    label_smoothing: float = 0.0  # eps of the smoothed targets
    ema: float = 0.0  # decay of the weight average evaluated and saved (0: none)
    seed: int = 42  # parameters, minibatches, dropout
    dtype: str = "float32"  # of parameters and arithmetic
    eval_every: int = 10000  # dev loss every this many steps (0: none; the command still reports it at the end)
    keep_best: bool = False  # save the model of the best dev evaluation, not the last step's (loop.train)


# A preset is a set of Config values; flags given explicitly override them.
PRESETS = {
    "lecture": {},  # the part 2 model and recipe (with the part 3 init fix): Config's defaults
    # the strongest recipe we found on dev (docs/best.md): the same model family, bigger, regularised
    "best": {"block_size": 7, "n_embd": 32, "n_hidden": 1024, "batch_size": 128, "optimizer": "adamw",
             "lr": 5e-4, "schedule": "cosine", "weight_decay": 0.1, "emb_dropout": 0.08, "fold": True,
             "steps": 200000},
}


MAX_STEPS = 10**9  # the loss history alone would need 8 GB past this


def plain(cfg):
    """cfg with numpy scalars as the Python values they are and dtype by its name: a notebook's
    Config(batch_size=np.int16(32)) would overflow the arithmetic done on it (BLOCK_ENTRIES //
    batch_size), and np.float32 or np.dtype("float32") for dtype would not save as JSON."""
    if not isinstance(cfg, Config):
        raise TypeError(f"a run's settings are a config.Config, not a {type(cfg).__name__}")
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    values = {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}
    dtype = values["dtype"]
    if isinstance(dtype, np.dtype) or (isinstance(dtype, type) and issubclass(dtype, np.generic)):
        values["dtype"] = np.dtype(dtype).name  # anything else (None, "U5") stays for config_problem to name
    return dataclasses.replace(cfg, **values)


def config_problem(cfg):
    """What is wrong with a configuration, or None. The command line has checked each flag's own
    range already and asks only about the settings that bound each other; a configuration read
    from a file (a checkpoint to resume) can hold anything, so every range is checked here too."""
    whole_at_least = {"block_size": 1, "n_embd": 1, "n_hidden": 1, "steps": 1, "batch_size": 1, "warmup": 0,
                      "seed": 0, "eval_every": 0}
    for name, low in whole_at_least.items():
        value = getattr(cfg, name)
        if not is_whole(value, at_least=-np.inf):
            return f"{name} is {value!r}, not a whole number"
        if value < low:
            return f"{name} is {getattr(cfg, name)}, below {low}"
    for name in ("lr", "decay_rate", "min_lr", "weight_decay", "eps", "beta1", "beta2", "dropout", "emb_dropout",
                 "label_smoothing", "ema"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return f"{name} is {value!r}, not a number"
    for name in ("lr", "decay_rate", "min_lr", "weight_decay", "eps"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and (value > 0 if name in ("lr", "eps") else value >= 0)):
            return f"{name} is {value}"
    for name in ("beta1", "beta2", "dropout", "emb_dropout", "label_smoothing", "ema"):
        if not 0 <= getattr(cfg, name) < 1:
            return f"{name} is {getattr(cfg, name)}, not in [0, 1)"
    for name in ("direct", "fold", "keep_best"):  # direct=1 would train Wd, then save a config called damaged
        if not isinstance(getattr(cfg, name), bool):
            return f"{name} is {getattr(cfg, name)!r}, not True or False"
    if not isinstance(cfg.data, str):  # a Path would not save as JSON
        return f"data is {cfg.data!r}, not a path as text"
    choices = {"init": ("scaled", "lecture"), "optimizer": ("sgd", "adamw"), "schedule": optim.SCHEDULES,
               "dtype": ("float32", "float64")}
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            return f"{name} is {getattr(cfg, name)!r}, not one of {', '.join(allowed)}"
    if cfg.steps > MAX_STEPS:
        return f"--steps {cfg.steps:,} is more than this program will run ({MAX_STEPS:,}); use fewer"
    if cfg.schedule == "cosine" and cfg.warmup >= cfg.steps:
        return f"--warmup {cfg.warmup} leaves no steps to decay over in {cfg.steps}; use fewer"
    if cfg.lr * cfg.weight_decay >= 1:  # decay alone would take all of every weight, or more, each step
        return (f"--weight-decay {cfg.weight_decay:g} at --lr {cfg.lr:g} shrinks every weight by "
                f"lr x decay = {cfg.lr * cfg.weight_decay:g} of itself each step; use a weight decay "
                f"below 1 / lr = {1 / cfg.lr:g} (typical: 1e-4 for sgd, 0.1 for adamw)")
    tiny, huge = float(np.finfo(cfg.dtype).tiny), float(np.finfo(cfg.dtype).max)
    if not tiny <= cfg.eps <= huge:  # 0 or infinite in the arithmetic: AdamW would divide by 0, or never move
        return (f"--eps {cfg.eps:g} is outside what {cfg.dtype} holds ({tiny:g} to {huge:g}); "
                f"use a value in that range (the default is 1e-8)")
    if cfg.keep_best and not 0 < cfg.eval_every < cfg.steps:  # none, or only the last step's: the last is kept
        made = "makes none" if not cfg.eval_every else (
            f"makes one, of the last step, in {cfg.steps:,} step{'s' if cfg.steps != 1 else ''}")
        return (f"--keep-best keeps the model of the best dev evaluation, and --eval-every {cfg.eval_every} {made}; "
                + (f"give an --eval-every below --steps (e.g. {cfg.steps // 10 or 1})" if cfg.steps > 1 else
                   "give --steps of 2 or more and an --eval-every below it"))
    if cfg.min_lr > cfg.lr:
        return f"--min-lr {cfg.min_lr:g} is above --lr {cfg.lr:g}; the schedule decays from --lr to it"
    return None


def describe_training(cfg):
    """One line: what moves the parameters, for the progress header."""
    text = f"training: {cfg.optimizer} lr {cfg.lr:g}, {cfg.schedule} schedule"
    if cfg.schedule == "inverse":
        text += f" (r={cfg.decay_rate:g})"
    elif cfg.schedule == "cosine":
        text += f" (warm-up {cfg.warmup}, to {cfg.min_lr:g})"
    text += f", batch {cfg.batch_size}, {cfg.steps} steps"
    extras = [f"{name} {value!r}" for name, value in  # repr: the value itself, never rounded (ema 0.999999999)
              (("weight decay", cfg.weight_decay), ("dropout", cfg.dropout), ("emb-dropout", cfg.emb_dropout),
               ("label smoothing", cfg.label_smoothing), ("ema", cfg.ema)) if value]
    if cfg.fold:
        extras.append("first layer folded")
    if cfg.keep_best:
        extras.append("keeping the best dev evaluation's model")
    return text + (", " + ", ".join(extras) if extras else "")


def params_problem(cfg, params, X, Y):
    """What keeps these parameters and examples from training under cfg, or None: the shapes
    and dtype cfg gives the network, and examples of its context length (config_problem first)."""
    if not isinstance(params, dict) or not all(isinstance(p, np.ndarray) for p in params.values()):
        model.check_params(params)  # what they must be, in its words (a list's .shape below: an AttributeError)
    T = cfg.block_size
    V = params["C"].shape[0] if "C" in params else None
    wanted = model.param_shapes(V, T, cfg.n_embd, cfg.n_hidden, cfg.direct)
    if set(params) != set(wanted):
        return f"the parameters are {', '.join(sorted(params))}, not the {', '.join(sorted(wanted))} of this config"
    for name, shape in wanted.items():
        p = params[name]
        if p.shape != shape or p.dtype != np.dtype(cfg.dtype):
            if p.shape == shape and p.dtype.newbyteorder("=") == np.dtype(cfg.dtype):  # say what to do
                return (f"parameter {name} is {cfg.dtype} in the other byte order ({p.dtype.str}); pass it "
                        f"as this machine's, .astype(np.{cfg.dtype})")
            return f"parameter {name} is {p.dtype} {p.shape}, not the config's {cfg.dtype} {shape}"
    if not all(np.all(np.isfinite(p)) for p in params.values()):  # else "diverged at step 1": blamed on the lr
        return "the parameters hold NaN or infinite values"
    if not all(p.flags.writeable for p in params.values()):  # else step 0 fails inside the optimiser
        return "the parameters must be writable arrays: the optimiser updates them in place"
    if np.ndim(X) != 2 or np.shape(X)[1] != T or np.ndim(Y) != 1 or len(Y) != len(X) or len(Y) == 0:
        return f"the examples are X {np.shape(X)} and Y {np.shape(Y)}, not (N, {T}) and (N,) for some N >= 1"
    for name, a in (("X", np.asarray(X)), ("Y", np.asarray(Y))):  # all of them now, not the first batch to draw one
        try:
            check_indices(a, V, name)
        except ValueError as e:
            return str(e)
    return None
