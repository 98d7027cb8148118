"""Checkpoints damaged in their values, not their form: every array readable and finite, but
numbers no trained model has, a config that contradicts the file, a training state its config
could not have saved. Each ends with one line and exit code 2, as in test_bad_input.py."""
import json
from dataclasses import fields

import numpy as np
import pytest

from mlp_lm import bounds, checkpoint, evaluate, mixture, model, sample, train
from mlp_lm.runtime import blas_threads
from mlp_lm.config import Config
from mlp_lm.trainer import Trainer

from .test_bad_input import assert_one_line_error, call


def trained(folder, *flags):
    """A 5-step run (H=8) in `folder`: small and quick, but a real checkpoint with its training state."""
    assert train.main(["--steps", "5", "--n-hidden", "8", "--eval-every", "0", *flags, "--out", str(folder)]) == 0
    return folder / "model.npz"


@pytest.fixture(scope="module")
def sgd_run(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("sgd"))


@pytest.fixture(scope="module")
def adamw_run(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("adamw"), "--optimizer", "adamw", "--lr", "0.01", "--ema", "0.9")


def edited(good, folder, change, steps=None):
    """A copy of checkpoint `good` in folder/model.npz after change(arrays, config), as np.savez
    writes it; steps: a larger --steps in its config, so that the run can be resumed."""
    with np.load(good, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"]))
    change(arrays, config)
    if steps is not None:
        config["steps"] = steps
    arrays["config"] = np.array(json.dumps(config))
    folder.mkdir(exist_ok=True)
    np.savez(folder / "model.npz", **arrays)
    return folder / "model.npz"


def fill(name, value):
    """A change that fills parameter `name` with `value` (an array alternates the values along it)."""
    def change(arrays, config):
        p = arrays[name]
        arrays[name] = (np.resize(np.array(value, p.dtype), p.shape) if np.ndim(value)
                        else np.full_like(p, value))
    return change


# --- parameters finite but far beyond any trained model ----------------------

HUGE = {"W1 1e38": (fill("W1", 1e38), "hidden layer"),  # overflows the matmul
        "b2 -1e38": (fill("b2", -1e38), "logits"),  # no overflow: float32 rounds every logit alike
        "b2 +-3e38": (fill("b2", [3e38, -3e38]), "logits")}  # a loss of 5e38


@pytest.mark.parametrize("kind", HUGE)
@pytest.mark.parametrize("module,flags", [(evaluate, []), (evaluate, ["--mix-ngram", "6"]), (sample, ["-n", "2"])])
def test_parameters_no_trained_model_has_are_refused(kind, module, flags, sgd_run, tmp_path, capsys):
    change, where = HUGE[kind]
    p = edited(sgd_run, tmp_path, change)
    code, err = call(module, ["--checkpoint", p, *flags], capsys)
    assert_one_line_error(code, err, where, "no trained model has parameters this large", "damaged")
    with pytest.raises(checkpoint.CheckpointError, match="no trained model"):
        checkpoint.load(p)


@pytest.mark.parametrize("kind", HUGE)
def test_the_models_arithmetic_raises_rather_than_return_junk(kind, sgd_run):
    params, _, _ = checkpoint.load(sgd_run)
    arrays = {k: v.copy() for k, v in params.items()}
    HUGE[kind][0](arrays, {})
    X, Y = np.zeros((50, 3), dtype=np.int64), np.arange(50) % len(params["b2"])
    with pytest.raises(FloatingPointError):
        model.split_loss(arrays, X, Y)  # was nan, -0.0 or 5e38
    with pytest.raises(FloatingPointError):
        model.next_probs(arrays, X)  # the sampling path
    with pytest.raises(FloatingPointError):
        mixture.evaluate(arrays, {"all": (X, Y)})


def test_an_overflow_the_loader_let_through_is_one_line(sgd_run, tmp_path, capsys, monkeypatch):
    # Evaluating and sampling are their own second line of defence, behind checkpoint.load.
    monkeypatch.setattr(checkpoint, "magnitude_problem", lambda params: None)
    p = edited(sgd_run, tmp_path, fill("W1", 1e38))
    for module, flags in ((evaluate, []), (sample, ["-n", "2"])):
        code, err = call(module, ["--checkpoint", p, *flags], capsys)
        assert_one_line_error(code, err, "arithmetic overflows", "damaged or not a trained model")
        assert "Warning" not in err


def test_a_file_that_expands_far_past_its_size_is_refused_before_it_is_read(sgd_run, tmp_path, capsys, monkeypatch):
    # From a hostile tester: a 1.5 MB file whose C was 1.3 GB of compressed zeros took 5 s and 1.6 GB before
    # its shape was refused. The bound is on the sizes the archive records, read before any array.
    with np.load(sgd_run) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("state.")}
        state = {k: f[k] for k in f.files if k.startswith("state.")}
    monkeypatch.setattr(checkpoint, "EXPANDED_MAX", 2**20)  # a 10 MB C, not GB, for the test
    bomb, squeezed = tmp_path / "bomb.npz", tmp_path / "squeezed.npz"
    np.savez_compressed(bomb, **{**arrays, "C": np.zeros((27, 100_000), np.float32)})
    np.savez_compressed(squeezed, **arrays)  # the model itself, compressed: it shrinks little, and loads
    read = []
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda f, k, real=np.lib.npyio.NpzFile.__getitem__:
                        read.append(k) or real(f, k))
    for module, flags in ((evaluate, []), (sample, ["-n", "2"])):
        code, err = call(module, ["--checkpoint", bomb, *flags], capsys)
        assert_one_line_error(code, err, f"{bomb}: its arrays would take 10 MiB in memory, from ",
                              "KiB in the file; training stores them uncompressed, so the file is damaged or not ours")
    assert read == []
    assert checkpoint.load(squeezed)[0]["C"].shape == arrays["C"].shape
    read.clear()
    assert bomb.stat().st_size * checkpoint.EXPANSION_MAX < 2**20  # the premise: refused for what it expands to
    # the training state (read by --resume) has the same bound
    np.savez_compressed(bomb, **arrays, **state, **{"state.opt.W1": np.zeros((300, 10_000), np.float32)})
    with pytest.raises(checkpoint.CheckpointError, match=r"would take 1\d MiB in memory, from \d+ KiB in the "
                                                         r"file; .*; start a new run$"):
        checkpoint.load_state(str(bomb))
    assert read == [] and checkpoint.load(bomb)[0]["C"].shape == arrays["C"].shape


def test_trained_models_are_far_inside_the_bounds(sgd_run):
    params, vocab, config = checkpoint.load(sgd_run)
    assert bounds.magnitude_problem(params) is None
    big = model.init_params(27, 8, 24, 4000, direct=True, init="lecture")  # a large untrained start passes too
    assert bounds.magnitude_problem(big) is None
    # The bounds hold for real contexts: every logit of the dev split is inside them.
    splits = evaluate.training_splits(config, vocab, config["block_size"])
    _, z_bound = bounds.activation_bounds(params)
    assert np.all(np.abs(model.logits(params, splits.dev[0])) <= z_bound)
    # logits past float32's range are named without numpy's "overflow encountered in cast" (a hostile pass)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        said = bounds.magnitude_problem({**params, "W2": np.full_like(params["W2"], 3e38)})  # past float32's max
    assert said.startswith("its logits could reach ") and float(said.split()[4].rstrip(",")) > 3.5e38


# --- a config that contradicts the file ---------------------------------------

def set_config(**values):
    return lambda arrays, config: config.update(values)


def cast(name, dtype):
    def change(arrays, config):
        arrays[name] = arrays[name].astype(dtype)
    return change


def swap_symbols(arrays, config):
    """'a' and 'b' trade places in both copies of the vocabulary: every row of C then means another symbol."""
    swapped = str(arrays["vocab"]).translate(str.maketrans("ab", "ba"))
    arrays["vocab"] = np.array(swapped)
    arrays["vocab_codes"] = np.array([ord(c) for c in swapped], dtype=arrays["vocab_codes"].dtype)


def newline_symbol(arrays, config):
    """A line break in place of 'a' (still sorted, since '\\n' < 'b'): no data file's line can hold one."""
    codes = arrays["vocab_codes"].copy()
    codes[1] = ord("\n")
    arrays["vocab_codes"] = codes
    arrays["vocab"] = np.array("".join(map(chr, codes.tolist())))


def only_the_boundary(arrays, config):
    """V = 1, every shape agreeing: a model of no symbols (a hostile pass: sample printed empty lines, exit 0)."""
    arrays.update(vocab=np.array("."), vocab_codes=np.array([ord(".")], dtype=arrays["vocab_codes"].dtype),
                  C=arrays["C"][:1], W2=arrays["W2"][:, :1], b2=arrays["b2"][:1])
    config["vocab_size"] = 1


def no_embedding(arrays, config):
    """E = 0: C (V, 0) and W1 (0, H), shapes that agree with each other."""
    arrays["C"] = arrays["C"][:, :0]
    arrays["W1"] = arrays["W1"][:0]
    config["n_embd"] = 0


@pytest.mark.parametrize("change,words", [
    (set_config(dtype="float64"), ["float32", "config says dtype float64", "damaged"]),
    (set_config(dtype="float16"), ["dtype 'float16'", "damaged"]),
    (cast("b1", np.float64), ["float32 and float64", "damaged"]),
    (set_config(split_seed=-5), ["split_seed -5", "(42)", "damaged"]),
    (swap_symbols, ["not a valid mlp_lm checkpoint", "not in the order training gives it"]),
    (newline_symbol, ["not a valid mlp_lm checkpoint", "line break"]),  # "one sample per line" broke
    (set_config(n_hidden=5), ["config says n_hidden 5", "its parameters have", "damaged"]),
    (set_config(vocab_size=99), ["config says vocab_size 99", "27", "damaged"]),
    (no_embedding, ["embedding size is 0", "damaged"]),  # evaluate divided by zero
    (only_the_boundary, ["not a valid mlp_lm checkpoint", "holds only the boundary '.'"]),
    # (the two below, a hostile pass: "says direct='false' but the file has no Wd", and "the training data has
    # changed since training")
    (set_config(direct="false"), ["not a valid mlp_lm checkpoint", 'direct "false" in its config is not true or false']),
    (set_config(direct=None), ["not a valid mlp_lm checkpoint", "direct null in its config"]),  # as the JSON writes it
    (set_config(data_sha256="zz"), ["not a valid mlp_lm checkpoint", 'data_sha256 "zz"', "not a SHA-256 digest"]),
])
def test_a_config_that_contradicts_the_file_is_refused(change, words, sgd_run, tmp_path, capsys):
    p = edited(sgd_run, tmp_path, change)
    for module, flags in ((evaluate, []), (sample, ["-n", "2"])):
        code, err = call(module, ["--checkpoint", p, *flags], capsys)
        assert_one_line_error(code, err, *words)
        # and what to do about it (a hostile tester: six of these said what was wrong, and nothing more)
        assert err.rstrip().endswith("; train one with `python -m mlp_lm.train` and pass its model.npz"), err


# --- a training state its config could not have saved -------------------------

def state_nan(arrays, config):
    arrays["state.param.W1"] = arrays["state.param.W1"].copy()
    arrays["state.param.W1"][0, 0] = np.nan


@pytest.mark.parametrize("run,change,words", [
    ("sgd", set_config(optimizer="adamw"), ["damaged", "lacks opt.m.C", "does not match its config"]),
    ("sgd", state_nan, ["damaged", "param.W1", "NaN"]),
    ("sgd", set_config(dtype="float64"), ["config says dtype float64"]),
    ("sgd", lambda arrays, config: config.pop("data_sha256"), ["damaged", "which data it was trained on"]),
    ("adamw", fill("state.opt.m.W1", 1e30), ["damaged", "opt.m.W1 is larger than any gradients"]),  # was: "diverged"
])
def test_resume_refuses_a_state_its_config_could_not_have_saved(run, change, words, sgd_run, adamw_run, tmp_path, capsys):
    edited(adamw_run if run == "adamw" else sgd_run, tmp_path, change, steps=10)
    code, err = call(train, ["--resume", "--out", tmp_path], capsys)
    assert_one_line_error(code, err, *words)
    assert "diverged" not in err and "learning rate" not in err


def trainer_and_state(good):
    """A fresh Trainer for checkpoint `good`'s config, the training state saved with it, and its step."""
    params, vocab, config = checkpoint.load(good)
    cfg = Config(**{f.name: config[f.name] for f in fields(Config)})
    fresh = model.init_params(len(vocab), cfg.block_size, cfg.n_embd, cfg.n_hidden, dtype=cfg.dtype)
    state = checkpoint.load_state(good)
    steps = int(state.pop("step"))
    for k in ("losses", "devs", "evaluated"):
        state.pop(k)
    n = int(state["block"].max()) + 1  # as many examples as the saved minibatch indices need
    X, Y = np.zeros((n, cfg.block_size), dtype=np.int64), np.zeros(n, dtype=np.int64)
    return Trainer(cfg, fresh, X, Y), state, steps


def put(name, value=None, dtype=None, shape=None):
    """A change to a training state: `name` (added if missing) filled with `value`, cast to `dtype`,
    or zeros of `shape`; value None and no dtype or shape removes every entry starting with `name`."""
    def change(state):
        if value is None and dtype is None and shape is None:
            for k in [k for k in state if k.startswith(name)]:
                del state[k]
            return
        a = np.asarray(state.get(name, 0), dtype=dtype)
        a = np.zeros(shape, a.dtype) if shape is not None else a
        state[name] = np.full_like(a, value) if value is not None else a
    return change


@pytest.mark.parametrize("run,change,words", [
    ("sgd", put("opt.t", 5, dtype=np.int64), ["holds opt.t", "an sgd run does not save"]),
    ("sgd", put("param.W1", dtype=np.float64), ["param.W1 is float64", "float32"]),
    ("sgd", put("param.W1", 1e38), ["param", "hidden layer", "overflows"]),
    ("adamw", put("ema."), ["lacks ema.C", "with --ema"]),
    ("adamw", put("opt."), ["lacks opt.m.C", "(11 in all)", "an adamw run with --ema saves"]),
    ("adamw", put("opt.t", 0), ["step counter t is 0", "not a step count"]),
    ("adamw", put("opt.v.W1", -1.0), ["opt.v.W1", "negative"]),
    ("adamw", put("opt.m.b1", shape=(3,)), ["opt.m.b1", "(3,)"]),
    ("adamw", put("opt.m.W2", 1e30), ["opt.m.W2", "larger than any gradients", "beside opt.v.W2"]),
    ("adamw", put("ema.W2", np.inf), ["ema.W2", "NaN or infinite"]),
    ("adamw", put("ema.b2", -1e38), ["ema", "logits"]),
])
def test_the_training_state_is_checked_against_its_config(run, change, words, sgd_run, adamw_run):
    good = sgd_run if run == "sgd" else adamw_run
    with blas_threads(1):  # the Trainer sets the BLAS threads for the run; give them back after
        trainer, state, steps = trainer_and_state(good)
        trainer.load_state(state)  # as saved: fine
        trainer, state, _ = trainer_and_state(good)
        change(state)
        with pytest.raises(ValueError) as e:
            trainer.load_state(state)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_adamws_step_counter_must_be_the_runs_step(adamw_run):
    with blas_threads(1):
        trainer, state, steps = trainer_and_state(adamw_run)
        trainer.load_state(state, steps=steps)
        trainer, state, steps = trainer_and_state(adamw_run)
        state["opt.t"] = np.array(steps - 2)  # bias corrections of another step: a different update
        with pytest.raises(ValueError, match=f"step counter t is {steps - 2}, but the run took {steps} steps"):
            trainer.load_state(state, steps=steps)


def test_arrays_a_model_is_not_made_of_are_never_read(sgd_run, tmp_path):
    # A file with an extra array (100 MB of zeros, compressed to almost nothing) loads in a few KB:
    # reading it would have cost its full size in memory.
    import tracemalloc
    with np.load(sgd_run, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez_compressed(tmp_path / "model.npz", junk=np.zeros(25_000_000, np.float32), **arrays)
    tracemalloc.start()
    try:
        params, _, _ = checkpoint.load(tmp_path / "model.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert set(params) == {"C", "W1", "b1", "W2", "b2"} and peak < 10_000_000, peak


@pytest.mark.parametrize("betas", [("0.9", "0.5"), ("0", "0")])  # no bound at all; the bound of m = g
def test_the_moment_check_takes_every_beta_quietly(betas, tmp_path):
    run = trained(tmp_path, "--optimizer", "adamw", "--beta1", betas[0], "--beta2", betas[1])
    with blas_threads(1), np.errstate(all="raise"):  # was "invalid value" from inf * 0, a warning on resume
        trainer, state, steps = trainer_and_state(run)
        trainer.load_state(state, steps=steps)
