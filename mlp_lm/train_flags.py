"""The flags of `python -m mlp_lm.train`, read into a Config: a preset first, the flags given over it,
and a refusal in one line for flags that contradict each other or that the run would ignore."""
import argparse
import os
import sys
from dataclasses import fields
from typing import NamedTuple

from . import shell
from .cli import ArgumentParser, UsageError
from .flags import fraction, non_negative_float, non_negative_int, positive_float, positive_int, thread_count
from .config import PRESETS, Config, config_problem
from .optim import SCHEDULES
from .wordfile import DEFAULT_DATA, in_checkout

DESCRIPTION = "Train the MLP language model on a word list, evaluate it, and sample from it."


# "lecture" names the part 2 lecture's model and recipe; its initialisation is part 3's, as --init's default
LECTURE_PRESET = ("the defaults below (the part 2 lecture's model and recipe, with the part 3 lecture's "
                  "initialisation: add --init lecture for part 2's own)")


def preset_help():
    parts = []
    for name, values in PRESETS.items():
        settings = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v:g}" if isinstance(v, float) else f" {v}")
                            for k, v in values.items())
        parts.append(f"{name}: {settings or LECTURE_PRESET}")
    return "; ".join(parts)


def as_given(name, value):
    """The flag of setting `name` as the user gave it: --no-direct for direct=False, else --direct."""
    return f"--{'no-' if value is False else ''}{name.replace('_', '-')}"


def as_flags(cfg, leave_out=()):
    """The train flags that give cfg's settings, but those in leave_out: one for each setting that is not
    Config's default (the default word list found from anywhere, however cfg names it)."""
    flags = []
    for f in fields(Config):
        value = getattr(cfg, f.name)
        if f.name in leave_out or value == f.default or (f.name == "data" and _same_file(value, in_checkout(DEFAULT_DATA))):
            continue
        flag = as_given(f.name, value)
        flags += [flag] if isinstance(value, bool) else [flag, shell.not_a_flag(value) if f.name == "data" else str(value)]
    return flags


def _same_file(a, b):
    """Whether the paths a and b name one file (not: a path no file system takes, a NUL in it)."""
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (ValueError, OSError):
        return False


def parse_args(argv):
    """The flags as a Config (preset first, explicit flags over it) and the other options."""
    ap = ArgumentParser(prog="python -m mlp_lm.train", description=DESCRIPTION,
                        argument_default=argparse.SUPPRESS)  # only flags the user gave reach the Config
    d = Config
    ap.add_argument("--preset", choices=tuple(PRESETS), default="lecture",
                    help=f"a starting configuration (default lecture); {preset_help()}")
    g = ap.add_argument_group("data and output")
    g.add_argument("--data", metavar="PATH", help="a UTF-8 file with one item per line (default data/names.txt)")
    g.add_argument("--out", metavar="DIR", default=None,
                   help="directory for model.npz and the rest (default: runs/<data file stem> in this checkout, "
                        "whatever the current directory, or -2, -3, ... if that holds anything already)")
    g.add_argument("--force", action="store_true", default=False,
                   help="let --out replace what a run (or --lr-sweep) would write there and finds already in it")
    g.add_argument("--resume", action="store_true", default=False,
                   help="continue the run in --out where it stopped, with its own settings, to its --steps")
    g = ap.add_argument_group("model")
    g.add_argument("--block-size", metavar="T", type=positive_int, help=f"context length T (default {d.block_size})")
    g.add_argument("--n-embd", metavar="E", type=positive_int, help=f"embedding size E (default {d.n_embd})")
    g.add_argument("--n-hidden", metavar="H", type=positive_int, help=f"hidden units H (default {d.n_hidden})")
    g.add_argument("--direct", action=argparse.BooleanOptionalAction,
                   help="the paper's direct connections from the embeddings to the logits (default off)")
    g.add_argument("--init", choices=("scaled", "lecture"),
                   help="scaled: initial loss ~ ln V (default); lecture: plain standard normal, as in part 2")
    g = ap.add_argument_group("optimisation")
    g.add_argument("--steps", metavar="N", type=positive_int,
                   help=f"optimiser steps (default {d.steps}; 1000 with --lr-sweep)")
    g.add_argument("--batch-size", metavar="B", type=positive_int, help=f"minibatch size B (default {d.batch_size})")
    g.add_argument("--optimizer", choices=("sgd", "adamw"), help="sgd (default) or adamw")
    g.add_argument("--lr", metavar="RATE", type=positive_float, help=f"peak learning rate (default {d.lr:g})")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="step: lr/10 after half the steps (default, the lecture's); inverse: lr / (1 + r t), "
                        "the paper's; cosine: cosine decay to --min-lr after --warmup steps")
    g.add_argument("--decay-rate", metavar="R", type=non_negative_float, help="r of the inverse schedule (default 0)")
    g.add_argument("--warmup", metavar="N", type=non_negative_int, help="cosine schedule's linear warm-up steps (default 0)")
    g.add_argument("--min-lr", metavar="RATE", type=non_negative_float, help="cosine schedule's final rate (default 0)")
    g.add_argument("--weight-decay", metavar="LAMBDA", type=non_negative_float,
                   help="weight decay on weights and embeddings, not biases: the penalty's gradient for sgd, "
                        "decoupled for adamw (default 0)")
    g.add_argument("--beta1", metavar="B1", type=fraction, help=f"AdamW's first-moment decay (default {d.beta1})")
    g.add_argument("--beta2", metavar="B2", type=fraction, help=f"AdamW's second-moment decay (default {d.beta2})")
    g.add_argument("--eps", metavar="EPS", type=positive_float, help=f"AdamW's epsilon (default {d.eps:g})")
    g.add_argument("--seed", metavar="N", type=non_negative_int, help=f"random seed (default {d.seed})")
    g.add_argument("--dtype", choices=("float32", "float64"), help="float32 (default, faster) or float64")
    g.add_argument("--fold", action=argparse.BooleanOptionalAction,
                   help="train the first layer from per-position tables of C times W1: the same model, fewer "
                        "multiply-adds when the vocabulary is small beside the batch, faster where the first "
                        "layer's products are a large share of a step (--preset best), slower on the lecture's "
                        "small model; --emb-dropout then drops entries of each position's copy of C, one mask "
                        "a step (default off; docs/derivations.md)")
    g.add_argument("--threads", metavar="N", type=thread_count, default=None,
                   help="threads for each step: a batch of 256 rows or more per thread is split between "
                        "them, a smaller one has them share the matrix products as BLAS threads (default: "
                        "chosen by the model's size; 1 for the lecture's, which also keeps a busy machine "
                        "from slowing it down; at most the machine's cores; --resume keeps a run's --threads)")
    g = ap.add_argument_group("regularisation")
    g.add_argument("--dropout", metavar="P", type=fraction, help="dropout on the hidden layer (default 0)")
    g.add_argument("--emb-dropout", metavar="P", type=fraction,
                   help="dropout on the concatenated embeddings (with --fold: on each position's copy of C; default 0)")
    g.add_argument("--label-smoothing", metavar="EPS", type=fraction, help="smooth the targets by EPS (default 0)")
    g.add_argument("--ema", metavar="DECAY", type=fraction,
                   help="evaluate and save an exponential moving average of the weights with this decay, "
                        "e.g. 0.999 (default 0: off)")
    g = ap.add_argument_group("evaluation")
    g.add_argument("--eval-every", metavar="N", type=non_negative_int,
                   help=f"dev loss every N steps (default {d.eval_every}; 0 turns it off)")
    g.add_argument("--keep-best", action=argparse.BooleanOptionalAction,
                   help="save the model of the best dev evaluation (every --eval-every steps, which must be "
                        "fewer than --steps, and the last step), not the last step's; the run trains on to the "
                        "end, says which step it kept, and --resume continues from the last step reached, not "
                        "from the kept model (default off)")
    g.add_argument("--lr-sweep", action="store_true", default=False,
                   help="instead of training: raise the rate from 1e-3 to 1 over the run and tabulate the loss")
    args = vars(ap.parse_args(argv))
    preset, out, sweep, n_threads = args.pop("preset"), args.pop("out"), args.pop("lr_sweep"), args.pop("threads")
    force, resume = args.pop("force"), args.pop("resume")
    if out == "":
        raise UsageError("--out is empty; name a folder, or leave --out out for a new one under runs/")
    if resume:
        if out is None:
            raise UsageError("--resume needs --out DIR, the folder of the run to continue")
        moved = args.pop("data", None)  # the run's data file, moved: it must hold the very bytes the run started on
        if args or sweep or "--preset" in (argv or sys.argv[1:]):
            given = ", ".join(as_given(k, v) for k, v in args.items()) or ("--lr-sweep" if sweep else "--preset")
            raise UsageError(f"--resume continues the run with the settings it was started with; "
                             f"leave out {given}")
        if force:  # a user who wants the run replaced, not continued, must not get it continued in silence
            raise UsageError("--resume continues the run in --out, and --force would replace it; leave out one "
                             "of the two (to start it over: --force without --resume, and its settings)")
        return Options(None, preset, out, False, n_threads, True, True, moved)
    if sweep:  # the sweep reads the model's sizes, the data, the batch and --steps, and nothing of the training
        unused = [k for k in SWEEP_IGNORES if k in args and args[k] != getattr(Config, k)]
        if unused or PRESETS[preset]:
            given = ", ".join(as_given(k, args[k]) for k in unused) or f"--preset {preset}"
            raise UsageError(f"--lr-sweep takes plain SGD steps at rates rising from 1e-3 to 1 (the lecture's "
                             f"search) and trains no model, so it would ignore {given}; leave that out")
    values = {**PRESETS[preset], **args}
    if sweep and "steps" not in args:
        values["steps"] = 1000
    if sweep and values["steps"] < 12:
        raise UsageError(f"--lr-sweep needs --steps of at least 12 (one per row of its table), got {values['steps']}")
    if "data" not in args:
        values["data"] = str(in_checkout(DEFAULT_DATA))
    cfg = Config(**values)
    for field, (setting, needed) in ONLY_WITH.items():  # a flag the run would ignore is a mistake, not a no-op
        if field in args and args[field] != getattr(Config, field) and getattr(cfg, setting) != needed:
            flag, other = "--" + field.replace("_", "-"), "--" + setting
            raise UsageError(f"{flag} applies only to {other} {needed}, and this run's {other} is "
                             f"{getattr(cfg, setting)}; add {other} {needed} or leave {flag} out")
    problem = config_problem(cfg)  # the settings that bound each other: warm-up, min-lr, decay, eps
    if problem:
        raise UsageError(problem)
    return Options(cfg, preset, out, sweep, n_threads, force, False)


class Options(NamedTuple):
    cfg: Config  # None with --resume: the checkpoint has it
    preset: str
    out: str
    sweep: bool
    threads: int
    force: bool
    resume: bool
    data: str = None  # with --resume: where the run's data file is now, if it has moved


# What --lr-sweep does not read: it steps plain SGD (no decay, no dropout) at its own rates and evaluates nothing.
SWEEP_IGNORES = ("optimizer", "lr", "schedule", "decay_rate", "warmup", "min_lr", "weight_decay", "beta1", "beta2",
                 "eps", "dropout", "emb_dropout", "label_smoothing", "ema", "eval_every", "fold", "keep_best")

# Flags that only one schedule or optimiser reads: field -> (the setting, the value it needs).
ONLY_WITH = {"warmup": ("schedule", "cosine"), "min_lr": ("schedule", "cosine"), "decay_rate": ("schedule", "inverse"),
             "beta1": ("optimizer", "adamw"), "beta2": ("optimizer", "adamw"), "eps": ("optimizer", "adamw")}
