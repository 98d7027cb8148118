"""Trainer.step is the step the docs write out: every flag of a run reaches the math it names.

A mutation audit found flags the step could drop or swap with every other test still passing (label
smoothing, each dropout's rate, AdamW's eps, the cosine schedule's floor). Here the step is written out
from the library's parts, each flag passed where it belongs, and the Trainer must give the same
parameters to the bit. Every flag is set away from its default, and no two rates are alike, so that
a flag dropped or given to the wrong place changes the numbers.
"""
import dataclasses

import numpy as np
import pytest

from mlp_lm import layers, model, optim
from mlp_lm.config import Config
from mlp_lm.data import load_splits
from mlp_lm.trainer import Trainer, block_rows

from .conftest import ROOT

DATA = ROOT / "tests" / "data" / "names-small.txt"

SGD_RUN = dict(optimizer="sgd", lr=0.3, weight_decay=0.01, schedule="inverse", decay_rate=0.05,
               label_smoothing=0.1, dropout=0.2, emb_dropout=0.35, ema=0.9)
ADAMW_RUN = dict(optimizer="adamw", lr=0.01, weight_decay=0.05, beta1=0.8, beta2=0.95, eps=1e-3,
                 schedule="cosine", warmup=3, min_lr=0.004, label_smoothing=0.05, dropout=0.25,
                 emb_dropout=0.15, direct=True)


def written_out(cfg, params, X, Y):
    """The run's steps from the library's parts: the minibatch stream, the masks (the embeddings' first),
    the loss and gradients, the schedule's rate, the optimiser and the weight average."""
    rng, drop_rng = np.random.default_rng([cfg.seed, 1]), np.random.default_rng([cfg.seed, 3])
    opt = (optim.SGD(cfg.weight_decay) if cfg.optimizer == "sgd" else
           optim.AdamW(cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps))
    ema = optim.EMA(params, cfg.ema) if cfg.ema else None
    B, T, E, H = cfg.batch_size, cfg.block_size, cfg.n_embd, cfg.n_hidden
    V = len(params["C"])
    block = rng.integers(0, len(Y), size=(block_rows(B), B))
    rates = []
    for step in range(cfg.steps):
        ix = block[step]
        masks = {}
        if cfg.emb_dropout:
            key, shape = ("C", (T, V, E)) if cfg.fold else ("embcat", (B, T * E))
            masks[key] = layers.dropout_mask(shape, cfg.emb_dropout, drop_rng, params["C"].dtype)
        if cfg.dropout:
            masks["h"] = layers.dropout_mask((B, H), cfg.dropout, drop_rng, params["C"].dtype)
        _, grads = model.loss_and_grads(params, X[ix], Y[ix], masks=masks, smoothing=cfg.label_smoothing,
                                        fold=cfg.fold)
        lr = optim.learning_rate(cfg.schedule, cfg.lr, step, cfg.steps, decay_rate=cfg.decay_rate,
                                 warmup=cfg.warmup, min_lr=cfg.min_lr)
        rates.append(lr)
        opt.step(params, grads, lr)
        if ema:
            ema.update(params)
    return params, ema.avg if ema else params, rates


@pytest.mark.parametrize("run", [SGD_RUN, ADAMW_RUN, dict(ADAMW_RUN, fold=True)], ids=["sgd", "adamw", "adamw-fold"])
def test_the_trainer_takes_the_step_written_out_with_every_flag(run):
    cfg = Config(block_size=3, n_embd=4, n_hidden=16, batch_size=8, steps=7, eval_every=0, **run)
    splits = load_splits(DATA, cfg.block_size)
    X, Y = splits.train
    V = len(splits.vocab)

    def fresh():
        return model.init_params(V, cfg.block_size, cfg.n_embd, cfg.n_hidden, direct=cfg.direct, seed=cfg.seed)

    params, evaluated, rates = written_out(cfg, fresh(), X, Y)
    trainer = Trainer(cfg, fresh(), X, Y)
    try:
        losses = [trainer.step(step) for step in range(cfg.steps)]
    finally:
        trainer.close()
    assert all(np.isfinite(losses))
    for k in params:
        assert np.array_equal(trainer.params[k], params[k]), k
        assert np.array_equal(trainer.evaluated[k], evaluated[k]), k  # the average, where there is one
    if cfg.ema:
        assert not np.array_equal(trainer.evaluated["W1"], trainer.params["W1"])
    # the schedule's own numbers, by its formulas: the flags that shape it reached it
    if cfg.schedule == "inverse":
        assert rates == pytest.approx([cfg.lr / (1 + cfg.decay_rate * t) for t in range(cfg.steps)], rel=1e-15)
    else:
        assert rates[0] == pytest.approx(cfg.lr / cfg.warmup) and rates[cfg.warmup - 1] == pytest.approx(cfg.lr)
        assert rates[-1] == pytest.approx(cfg.min_lr)


@pytest.mark.parametrize("run,flags", [
    (ADAMW_RUN, ("weight_decay", "beta1", "beta2", "eps", "warmup", "min_lr", "label_smoothing", "dropout",
                 "emb_dropout")),
    (SGD_RUN, ("weight_decay", "decay_rate", "label_smoothing", "dropout", "emb_dropout", "ema")),
], ids=["adamw", "sgd"])
def test_each_flag_changes_the_step(run, flags):
    # the comparison above can fail: a run with any one of the flags back at its default ends elsewhere
    cfg = Config(block_size=3, n_embd=4, n_hidden=16, batch_size=8, steps=7, eval_every=0, **run)
    splits = load_splits(DATA, cfg.block_size)
    X, Y = splits.train
    V = len(splits.vocab)

    def fresh():
        return model.init_params(V, 3, 4, 16, direct=cfg.direct, seed=cfg.seed)
    _, base, _ = written_out(cfg, fresh(), X, Y)  # the model evaluated: the average, where there is one
    for flag in flags:
        other = dataclasses.replace(cfg, **{flag: getattr(Config, flag)})
        _, evaluated, _ = written_out(other, fresh(), X, Y)
        assert not all(np.array_equal(evaluated[k], base[k]) for k in base), flag
