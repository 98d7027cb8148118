"""One training run's moving parts: the configuration, and the step that the loop repeats.

train.py (the command) and bench.py (the benchmark) both drive a Trainer, so the
benchmark times exactly the step that training runs.
"""
import json
import math
from dataclasses import dataclass

import numpy as np

from . import layers, model, optim
from .data import DEFAULT_DATA


@dataclass
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
    label_smoothing: float = 0.0  # eps of the smoothed targets
    ema: float = 0.0  # decay of the weight average evaluated and saved (0: none)
    seed: int = 42  # parameters, minibatches, dropout
    dtype: str = "float32"  # of parameters and arithmetic
    eval_every: int = 10000  # dev loss every this many steps (0: only at the end)


# A preset is a set of Config values; flags given explicitly override them.
PRESETS = {
    "lecture": {},  # the part 2 model and recipe (with the part 3 init fix): Config's defaults
    # the strongest recipe we found on dev (docs/best.md): the same model family, bigger, regularised
    "best": {"block_size": 6, "n_embd": 24, "n_hidden": 1024, "batch_size": 128, "optimizer": "adamw",
             "lr": 1e-3, "schedule": "cosine", "weight_decay": 0.1, "emb_dropout": 0.05},
}


BLOCK = 256  # minibatches of indices drawn at once


class Trainer:
    """Holds what changes from step to step: parameters, optimiser state, weight average, random streams."""

    def __init__(self, cfg, params, X, Y):
        self.cfg, self.params, self.X, self.Y = cfg, params, X, Y
        self.rng = np.random.default_rng([cfg.seed, 1])  # minibatches: a stream separate from the init
        self.drop_rng = np.random.default_rng([cfg.seed, 3])  # dropout masks: their own stream
        self.dtype = np.dtype(cfg.dtype)
        self.opt = optim.make_optimizer(cfg.optimizer, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps)
        self.ema = optim.EMA(params, cfg.ema) if cfg.ema else None
        self.block, self.block_pos = None, 0  # minibatch indices, drawn BLOCK steps at a time

    def state(self):
        """Everything a later run needs to continue exactly where this one stopped, as arrays.

        The random generators' states go as JSON text; the raw parameters go too,
        since a checkpoint's parameters are the weight average when there is one.
        """
        st = {"rng": np.array(json.dumps(self.rng.bit_generator.state)),
              "drop_rng": np.array(json.dumps(self.drop_rng.bit_generator.state)),
              "block": self.block if self.block is not None else np.zeros((0, self.cfg.batch_size), np.int64),
              "block_pos": np.array(self.block_pos)}
        st.update({f"param.{k}": p for k, p in self.params.items()})
        st.update({f"opt.{k}": np.asarray(v) for k, v in self.opt.state().items()})
        if self.ema:
            st.update({f"ema.{k}": a for k, a in self.ema.avg.items()})
        return st

    def load_state(self, st):
        """Continue from state(): the parameters, optimiser, weight average and random streams."""
        self.rng.bit_generator.state = json.loads(str(st["rng"]))
        self.drop_rng.bit_generator.state = json.loads(str(st["drop_rng"]))
        self.block = st["block"] if len(st["block"]) else None
        self.block_pos = int(st["block_pos"])
        if self.block is not None and (self.block.shape[1] != self.cfg.batch_size or not 0 <= self.block_pos <= len(self.block)
                                       or self.block.min() < 0 or self.block.max() >= len(self.Y)):
            raise ValueError("the saved minibatch indices do not fit this run")
        for k in self.params:
            if st[f"param.{k}"].shape != self.params[k].shape:
                raise ValueError(f"parameter {k} has shape {st[f'param.{k}'].shape}, not {self.params[k].shape}")
            self.params[k][...] = st[f"param.{k}"]
        self.opt.load_state({k[4:]: v for k, v in st.items() if k.startswith("opt.")})
        if self.ema:
            for k in self.ema.avg:
                self.ema.avg[k][...] = st[f"ema.{k}"]

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
            self.block, self.block_pos = self.rng.integers(0, len(self.Y), size=(BLOCK, B)), 0
        ix = self.block[self.block_pos]  # (B,)
        self.block_pos += 1
        masks = {"embcat": layers.dropout_mask((B, cfg.block_size * cfg.n_embd), cfg.emb_dropout,
                                               self.drop_rng, self.dtype),
                 "h": layers.dropout_mask((B, cfg.n_hidden), cfg.dropout, self.drop_rng, self.dtype)}
        loss, grads = model.loss_and_grads(self.params, self.X[ix], self.Y[ix], masks=masks,
                                           smoothing=cfg.label_smoothing)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss {loss}")
        lr = optim.learning_rate(cfg.schedule, cfg.lr, step, cfg.steps, decay_rate=cfg.decay_rate,
                                 warmup=cfg.warmup, min_lr=cfg.min_lr)
        self.opt.step(self.params, grads, lr)
        if self.ema:
            self.ema.update(self.params)
        return loss
