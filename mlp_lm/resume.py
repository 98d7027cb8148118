"""Where a stopped run resumes: its configuration, losses so far and training state, read back from
its model.npz with every check that the file is one a training wrote (a damaged one is refused in one
line before any work; Trainer.load_state checks the tensors themselves)."""
import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np

from . import checkpoint, shell
from .checks import some
from .cli import UsageError
from .config import PRESETS, Config, config_problem
from .train_flags import as_flags
from .data import load_splits
from .runs import resume_command
from .loop import DIVERGE_WINDOW, divergence_limit, evaluated_at, last_dev_missing
from .snapshot import SNAPSHOT_SECONDS
from .flags import FewerThreads
from .runtime import available_cores
from .trainer import is_count
from .wordfile import NotAWordList, digest, read_otherwise, refused_hint


MAX_SECONDS = 1e9  # a training time of more than 31 years is no run's: a damaged state

# Settings newer than runs that may still be resumed, with the value that does what those runs did.
ADDED = {"fold": False, "keep_best": False}


def stopped_beside(out):
    """The side folder of `out` (interrupted, interrupted-2, ...: where a --force run stopped part-way went)
    whose run can still be resumed, the newest if several; None if none."""
    found = []
    for side in Path(out).glob("interrupted*"):
        try:  # the folders train makes there (runs.claim_fresh): never a link (to another run), nor interrupted.old
            if re.fullmatch(r"interrupted(-[2-9]|-[1-9][0-9]+)?", side.name) and side.is_dir() and not side.is_symlink() \
                    and resume_point(side)[2] is not None:
                found.append(side)
        except (UsageError, checkpoint.CheckpointError, OSError, ValueError):  # no run, a damaged one: not this
            pass
    return max(found, key=lambda side: (side / "model.npz").stat().st_mtime_ns, default=None)


def beside(out):
    """' (a run stopped beside it ...)': the pointer a refusal to resume the run in `out` ends with, where a
    --force run over it stopped (or was killed) in a side folder; '' where none did."""
    side = stopped_beside(out)
    return f" (or continue the run stopped beside it, in {side}: {resume_command(side)})" if side else ""


def saved_config(config):
    """The Config of the settings a run saved (its model.npz's config, or its metrics.json's), each of the
    type the run would have given it, that make sense together: else KeyError (a setting missing: only
    ADDED's may be), TypeError or ValueError saying which."""
    cfg = Config(**{f.name: config.get(f.name, ADDED[f.name]) if f.name in ADDED else config[f.name]
                    for f in fields(Config)})
    for f in fields(Config):
        value, default = getattr(cfg, f.name), getattr(Config, f.name)
        if isinstance(value, bool) != isinstance(default, bool) or not (
                isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))):
            raise TypeError(f"{f.name} is {value!r}")
    problem = config_problem(cfg)
    if problem:
        raise ValueError(problem)
    return cfg


def restart_command(out):
    """The command that starts the run in `out` over, with the settings its metrics.json records, or None
    where that file does not record them (missing, damaged, or settings of the wrong type or that clash)."""
    try:
        config = json.loads((Path(out) / "metrics.json").read_text())["config"]
        if not isinstance(config, dict):
            return None
        cfg = saved_config(config)
        return shell.join(["python", "-m", "mlp_lm.train", *as_flags(cfg), "--out", shell.not_a_flag(out), "--force"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def resume_point(out, data=None):
    """(Config, preset, (state, losses so far, dev losses so far, data sha256, symbols), what resuming
    will do) of the run in `out`; the third item is None when that run is already complete. `data`: the
    --data given, which a complete run still checks is its file (a UsageError or DataError if not)."""
    if Path(out).exists() and not Path(out).is_dir():  # else "no run was saved there", as if a folder
        raise UsageError(f"nothing to resume in {out}: it is a file, not a run's folder; pass the folder a run "
                         f"was saved in (--out when it trained)")
    path = Path(out) / "model.npz"
    try:
        # a damaged one has nothing to resume from (train saves whole files, so only another program damages one)
        again = restart_command(out)
        model, vocab, config = checkpoint.load(path, "the run cannot be resumed from it: " + (
            f"start it over with {again}" if again else "start a new one (--force to replace it)") + beside(out))
    except checkpoint.CheckpointError:
        if not path.exists():  # even after load finished any save cut short: no run was ever saved here
            side = stopped_beside(out)  # a --force run over a user's files, killed: its snapshot is beside them
            raise UsageError(f"nothing to resume in {out}: no run was saved there (a run is saved when it ends "
                             f"or is stopped, and every {SNAPSHOT_SECONDS / 60:g} minutes as it trains); " + (
                                 f"a run stopped beside it is in {side}: {resume_command(side)} continues it"
                                 if side else
                                 "start one without --resume")) from None
        raise
    if config.get("diverged_at") is not None:  # resuming would replay the very steps that went wrong
        raise UsageError(f"the run in {out} diverged after step {config['diverged_at']} and was saved as it was before, "
                         f"at its best dev evaluation; at its learning rate it cannot go on: start a new run with a "
                         f"smaller --lr{beside(out)}")
    state = checkpoint.load_state(path)
    if state is None:
        raise UsageError(f"{path} holds no training state to resume from (a model saved alone, where the run's "
                         f"files found no room, or one saved before resuming existed); start a new run{beside(out)}")
    missing = [k for k in ("step", "losses", "devs") if k not in state]
    if missing:  # a Trainer's state saved from Python, without the loop's part
        raise UsageError(f"{path} holds a training state without the loop's {', '.join(missing)}, so it cannot be "
                         f"resumed here (python -m mlp_lm.train saves them); start a new run")
    damaged = f"{path} has a damaged training state or config"
    try:
        cfg = saved_config(config)
        if not isinstance(config.get("data_sha256"), str):  # every run saves it: resume checks the data against it
            raise ValueError("it does not say which data it was trained on (data_sha256)")
        done, history, devs = read_history(state, cfg.steps)
        problem = history_problem(cfg, history, devs, len(vocab.itos)) or model_problem(cfg, model, state, devs)
        if problem:
            raise ValueError(problem)
        for name in ("step", "losses", "devs"):  # what is left is the Trainer's
            del state[name]
        timing = read_timing(state, done)
        evaluated = state.pop("evaluated", np.array(True))  # saved since a stopped final evaluation can be redone
        if evaluated.shape != () or evaluated.dtype != bool:
            raise ValueError(f"'evaluated' is {evaluated.tolist()!r}, not true or false")
        evaluated = bool(evaluated)
        threads = state.get("threads", np.array(0))  # --threads, 0 for none (and in states saved before it was kept)
        if not is_count(threads) or int(threads) < 0:
            raise ValueError(f"'threads' is {threads.tolist()!r}, not a thread count")
    except KeyError as e:  # a setting every run saves, or a part of the state
        raise UsageError(f"{damaged} (it has no {e.args[0]}); start a new run") from None
    except (TypeError, ValueError) as e:
        raise UsageError(f"{damaged} ({e}); start a new run") from None
    preset = config.get("preset", "lecture")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise UsageError(f"{damaged} (preset {preset!r}); start a new run")
    if done >= cfg.steps and evaluated and not last_dev_missing(cfg, done, devs):  # (earlier versions saved that)
        complete = f"the run in {shell.shown(out)} is complete ({done} of {cfg.steps} steps)"
        if data is not None and digest(data) != config["data_sha256"]:  # a file it cannot read: its own line
            raise UsageError(f"{complete}, and --data {data} is not the file it was trained on (other bytes): "
                             f"nothing to resume")
        side = stopped_beside(out)
        return cfg, preset, None, f"{complete}: nothing to resume" + (
            f" (a run stopped beside it is in {side}: {resume_command(side)} continues it)" if side else "")
    resumed = (state, history, devs, config.get("data_sha256"), vocab.itos, timing)
    if done >= cfg.steps:
        cut = "dev evaluation after its last step" if last_dev_missing(cfg, done, devs) else "final evaluation"
        return cfg, preset, resumed, (f"the run in {shell.shown(out)} trained all {done} steps but its {cut} was cut short: "
                                      f"evaluating it")
    side = stopped_beside(out)  # a --force run over this stopped one, stopped or killed in turn: the newer
    try:
        newer = side is not None and (side / "model.npz").stat().st_mtime_ns > path.stat().st_mtime_ns
    except OSError:  # gone since: nothing to point at
        newer = False
    return cfg, preset, resumed, f"resuming the run in {shell.shown(out)} at step {done} of {cfg.steps}" + (
        f" (a newer run, stopped beside it, is in {side}: {resume_command(side)} continues that one)"
        if newer else "")


def read_history(state, steps):
    """(the steps done, the loss of each, {step: dev loss}) from the training state a run of `steps` steps
    saved, checked to be what a run saves: a ValueError says what is not (a KeyError names a missing part)."""
    step = state["step"]
    if not is_count(step):
        raise ValueError(f"the step {step!r} is not a whole number")
    done = int(step)
    history, evals = state["losses"], state["devs"]
    if history.ndim != 1 or history.dtype.kind != "f" or evals.dtype.kind != "f" or evals.ndim != 2 or (
            evals.size and evals.shape[1] != 2):
        raise ValueError(f"its losses ({history.dtype} {history.shape}) and dev losses ({evals.dtype} "
                         f"{evals.shape}) are not what a run saves")
    history, evals = history.astype(np.float64), evals.astype(np.float64).reshape(-1, 2)  # a loss a step, no more
    if not 0 < done <= steps or len(history) != done or not np.all(np.isfinite(history) & (history >= 0)):
        raise ValueError(f"step {done} of {steps} with {len(history)} losses, or losses that are not losses")
    if not np.all((evals[:, 0] == np.round(evals[:, 0])) & (1 <= evals[:, 0]) & (evals[:, 0] <= done)):
        raise ValueError("the steps of the dev evaluations are not steps of this run")
    if len(set(evals[:, 0])) != len(evals) or not np.all(np.isfinite(evals[:, 1]) & (evals[:, 1] >= 0)):
        raise ValueError("its dev losses repeat a step or are not losses")
    return done, history, {int(k): float(v) for k, v in evals}


def history_problem(cfg, history, devs, V):
    """Why these losses and dev evaluations are not what the run `cfg` left training, or None: its dev
    losses come at the steps it evaluates (loop.evaluated_at; the last step's may be missing, stopped
    in it), and its losses kept to the rule it stops a run by (loop.divergence_limit; a run that diverged
    saves what it had before, never a window past the limit), within what the dtype can add up to."""
    done = len(history)
    every = range(cfg.eval_every, done + 1, cfg.eval_every) if cfg.eval_every else ()
    wanted = {step for step in (*every, done) if evaluated_at(cfg, step)}  # its multiples, and --keep-best's last
    if not set(devs) <= wanted or wanted - set(devs) - {done}:
        return (f"its dev losses are at steps {some(devs, most=4) or 'none'}, not the run's every "
                f"{cfg.eval_every} steps")
    largest = 2 * float(np.finfo(cfg.dtype).max) + np.log(V)  # -log p: at most twice the largest logit, and ln V
    if history.max(initial=0) > largest:
        return f"a loss of {history.max():.4g} a step, past any {cfg.dtype} model's"
    limit = divergence_limit(history[0], V)
    windows = history[:done - done % DIVERGE_WINDOW].reshape(-1, DIVERGE_WINDOW).mean(axis=1)
    if windows.max(initial=0) > limit:
        step = DIVERGE_WINDOW * (int(np.argmax(windows > limit)) + 1)
        return f"its losses by step {step} average past where the run would have stopped as diverged"
    return None


def model_problem(cfg, model, state, devs):
    """Why the model saved beside this training state is not the one the state says, or None: the raw
    parameters, or the weight average (--ema), or the kept model (--keep-best, once it has one). A
    state that lacks them, or holds them damaged, gets None: Trainer.load_state, or loop.kept_problem,
    says what is wrong with it in its own words."""
    best = any(k == "best_step" or k.startswith("best.") for k in state)
    if best and not cfg.keep_best:
        return None
    if cfg.keep_best and (best or devs):  # a kept model, or one due: loop.kept_problem checks it against dev
        kind = "best"
    else:
        kind = "ema" if cfg.ema else "param"
    for k, p in model.items():
        a = state.get(f"{kind}.{k}")
        if a is None or a.shape != p.shape or a.dtype != p.dtype or not np.all(np.isfinite(a)):
            return None
        if not np.array_equal(p, a):  # the very arrays a save writes twice
            return f"its model's {k} is not the training state's {kind}.{k}"
    return None


def read_timing(state, done):
    """(the seconds a run of `done` steps has trained for, the step they count from), taken out of its training
    state: (0, done) for a run saved before states kept their time, whose earlier steps' time is not known."""
    if "seconds" not in state and "timed_from" not in state:
        return 0.0, done
    seconds, since = state.pop("seconds"), state.pop("timed_from")  # a KeyError if only one is there: damaged
    if seconds.shape != () or seconds.dtype.kind != "f" or not 0 <= seconds < MAX_SECONDS:  # NaN fails too
        raise ValueError(f"its training time {seconds.tolist()!r} is not a time")
    if not is_count(since) or not 0 <= int(since) <= done:
        raise ValueError(f"its training time counts from step {since.tolist()!r}, not a step of the {done} it took")
    return float(seconds), int(since)


def data_problem(resumed, splits, data, out, named):
    """Why the data read for a resumed run is not the run's, or None: other bytes (named: the user passed
    --data), or the same bytes read into other symbols by a reader that has changed since."""
    if splits.sha256 != resumed[3]:
        return (f"the training data {data} " + (f"is not the file the run in {out} started on (other bytes)" if named
                else f"has changed since the run in {out} started") + "; a resumed run must see the same data, byte "
                "for byte (line ends included): " + ("pass the file it started on" if named else
                                                     "put back the file it started on") +
                ", or start a new run (another --out, or --force to replace this one)")
    if splits.vocab.itos != resumed[4]:
        return f"the training data {data}: " + (read_otherwise(resumed[4], splits.vocab.itos) or
                                                 "it reads into other symbols than the run's; start a new run")
    return None


def run_splits(data, block_size, resumed, out):
    """load_splits of data; for a resumed run (resumed, from resume_point) whose very file this version refuses,
    where an earlier one read it (UTF-16 without its mark), a UsageError saying to start a new run."""
    try:
        return load_splits(data, block_size)
    except NotAWordList as e:  # for its bytes (UTF-16, NULs), which an earlier version may have read
        hint = refused_hint(data, resumed[3], f"run in {out}") if resumed is not None else None
        if hint:
            raise UsageError(f"{e}; {hint}") from None
        raise


def saved_threads(resumed):
    """The --threads that the stopped run `resumed` (resume_point's, which checked it) was given, for its --resume
    to use again, since two BLAS threads can round a large model's products otherwise than one: at most the
    cores this process may use (a FewerThreads then, which says why). 0 for a run given none, or a new run."""
    threads = int(resumed[0].get("threads", 0)) if resumed is not None else 0
    cores = available_cores()
    return threads if threads <= cores else FewerThreads(cores, threads)
