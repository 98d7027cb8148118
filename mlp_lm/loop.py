"""The training loop: Trainer.step repeated until the run is done, diverges or is stopped.

train.py (the command) runs train().
"""
import math
import sys
import time
from contextlib import nullcontext
from functools import partial

import numpy as np

from . import evaltime, model, runtime
from .cli import UsageError, line_break, signals_held
from .config import config_problem, params_problem, plain
from .progress import Progress
from .stops import Diverged, OutOfMemory, RanAway
from .trainer import Trainer


DIVERGE_WINDOW = 100  # steps whose mean training loss is watched
DIVERGE_FACTOR = 2.0  # a window mean this many times the start (or ln V, if higher) is divergence


def divergence_limit(first_loss, V):
    """The mean training loss over DIVERGE_WINDOW steps past which a run has diverged: DIVERGE_FACTOR times
    its first step's loss, or ln V (a uniform guess over V symbols) if that is higher."""
    return DIVERGE_FACTOR * max(float(first_loss), math.log(V))


def train(cfg, splits, params, resumed=None, threads=1, follow_load=False, held=None, snapshots=None):
    """Minibatch training. Returns (the Trainer, losses per step, {step: dev loss}, the interrupt
    that stopped it early or None); the stop signals (cli.STOP_SIGNALS) stop it. resumed: (the Trainer's saved
    state, the losses so far, the dev losses so far) to continue a run exactly where it stopped.
    threads: how many each step uses (see Trainer); follow_load: fewer BLAS threads while
    other programs keep a core busy (runtime.ThreadGovernor). held: the list of a caller's
    cli.signals_held() block, which then holds the signals from before training until the
    caller's save is done: the signal that stops training is taken off it, later ones stay.
    snapshots: a snapshot.Snapshots, asked between steps whether to save the run as it is.

    With cfg.keep_best, trainer.best is (step, parameters) of the best dev evaluation, the last step's
    included: the model to save in place of trainer.evaluated (None before the first evaluation).

    Diverges if the loss or any arithmetic overflows, or if the mean training loss of the last
    DIVERGE_WINDOW steps rises past DIVERGE_FACTOR times where it started (or ln V, whichever is
    higher): such a model is junk, not a result. Then the Trainer is put back to its state at the
    best dev evaluation of this training, and returned with the losses to there and a Diverged
    (its .kept that step) as the interrupt: the best of the run, not lost. With no evaluation
    better than a uniform guess (ln V), or in a resumed run (whose folder keeps the last state
    saved, the one resumed from or a snapshot, which may be better than any of its own), Diverged
    is raised. Raises ValueError, before any step, for what Trainer refuses and for a dev set it
    cannot evaluate (when it evaluates one).
    """
    cfg = plain(cfg)  # numpy scalars as Python values
    problem = config_problem(cfg) or params_problem(cfg, params, *splits.train)  # Trainer's refusals, named first
    V = len(splits.vocab)
    if not problem and params["C"].shape[0] != V:  # else it trains, and its save is refused at the end
        problem = f"the parameters are for {params['C'].shape[0]} symbols, and the data's vocabulary has {V}"
    if problem:
        raise ValueError(problem)
    if cfg.eval_every and cfg.eval_every <= cfg.steps:  # dev is read steps into the run: a bad one is refused now
        try:
            model.check_examples(params, *splits.dev)
        except ValueError as e:
            raise ValueError(f"dev: {e}") from None
    fixed = 0 if follow_load else getattr(threads, "asked", threads)  # (the count asked, where it got fewer cores)
    trainer = Trainer(cfg, params, *splits.train, threads, fixed_threads=fixed)
    # BLAS threads spin while they wait, so they give way while other programs keep a core busy;
    # the threads of a split batch sleep while they wait, and keep working.
    governor = runtime.ThreadGovernor(threads) if follow_load and trainer.split.parts == 1 else None
    losses = np.full(cfg.steps, np.nan)
    devs = {}
    done = 0  # completed steps
    limit = None
    try:
        if resumed is not None:
            state, history, devs = resumed
            _load_resumed(trainer, state, len(history))
            done = len(history)
            losses[:done] = history
            limit = divergence_limit(history[0], V)
        # the ETA counts the dev evaluations in, at this estimate until one is timed: a big list's take longer
        one = evaltime.evaluation_seconds(trainer.evaluated, len(splits.dev[1]), refine=False) \
            if evaluations_after(cfg, done) else 0.0
    except BaseException:  # the Trainer has set the BLAS threads: the caller's come back before it is told why
        trainer.close()
        raise
    progress = Progress(cfg.steps, start=done, evaluations=partial(evaluations_after, cfg), evaluation_seconds=one)
    interrupt = None
    good = None  # (step, the Trainer's state, the dev losses) at the best dev evaluation: what divergence keeps
    evaluating = False
    # The stop signals (Ctrl-C, SIGTERM, ...) are held while a step runs and honoured between steps, so the state
    # saved is always that of a whole number of steps (a resumed run then matches one in one go);
    # they stay held while the interrupt is handled, so a second one cannot cut that short.
    with signals_held() if held is None else nullcontext(held) as held:
        try:
            with np.errstate(over="raise", invalid="raise"):  # overflow or NaN raises
                if resumed is not None:  # a stop signal stops these between chunks too, and --resume redoes them
                    _check_kept(trainer, cfg, devs, splits.dev, held)
                    if last_dev_missing(cfg, done, devs):  # stopped before it: made now, as it was then
                        say_slow(f"the dev evaluation after step {done}, which the run was stopped in",
                                 trainer.evaluated, len(splits.dev[1]))
                        evaluating = True
                        evaluate_dev(trainer, cfg, devs, done, splits.dev, held)
                        evaluating = False
                for step in range(done, cfg.steps):
                    losses[step] = loss = trainer.step(step)
                    done = step + 1
                    if limit is None:
                        limit = divergence_limit(loss, V)
                    if done % DIVERGE_WINDOW == 0:
                        window = float(losses[done - DIVERGE_WINDOW:done].mean())
                        if window > limit:
                            raise RanAway(f"by step {done}: the training loss averaged {window:.4g} over "
                                          f"the last {DIVERGE_WINDOW} steps, more than {DIVERGE_FACTOR:g} "
                                          f"times where it started ({limit / DIVERGE_FACTOR:.4g})")
                    dev, began = None, time.perf_counter()
                    if evaluated_at(cfg, done):
                        evaluating = True
                        dev = evaluate_dev(trainer, cfg, devs, done, splits.dev, held)
                        evaluating = False
                        if resumed is None and dev < min(math.log(V), devs[good[0]] if good else math.inf):
                            good = None  # the copy it held goes before the new one is made (trainer.memory_needed)
                            good = done, trainer.state(), dict(devs)  # the best better than uniform, so far
                    progress.update(done, loss, dev, time.perf_counter() - began)
                    if governor is not None:
                        governor.tick()
                    # not the last step's, nor one a stop signal is about to save: those are saved anyway
                    if snapshots is not None and done < cfg.steps and not held and snapshots.due():
                        snapshots.save(trainer, losses[:done], devs)
                    if held:
                        raise held.pop(0)  # the signals that come after it stay for the caller
        except KeyboardInterrupt as e:  # a stop signal (cli.Interrupted)
            print(f"{line_break()}interrupted after {done} step{'s' if done != 1 else ''}: saving {saved(trainer)}",
                  file=sys.stderr)
            interrupt = e
        except MemoryError:  # a step or a dev evaluation that did not fit: the state is that of `done` steps
            # (a step makes its arrays before any parameter moves, optim.py), so it is saved as a signal saves it
            if not done:  # a state of no steps is no run to save, nor one --resume would take (a hostile tester's)
                raise UsageError("not enough memory to take one training step at these sizes; nothing was saved: use "
                                 "smaller ones, or give this process more memory (free some, or raise ulimit -v)"
                                 ) from None
            print(f"{line_break()}out of memory {'in the dev evaluation after' if evaluating else 'after'} {done} "
                  f"step{'s' if done != 1 else ''}: saving {saved(trainer)}", file=sys.stderr)
            interrupt = OutOfMemory(done, evaluating)
        except (FloatingPointError, RanAway) as e:
            where = (str(e) if isinstance(e, RanAway) else f"in the dev evaluation after step {done} ({e})"
                     if evaluating else f"at step {done + 1} ({e})")
            ran = done
            if good is not None:
                try:
                    trainer.load_state(good[1], steps=good[0])  # the best of the run, as its checks take it
                except ValueError:  # parameters no trained model has: nothing worth keeping
                    good = None
            if good is None:
                snapshot = snapshots.step if snapshots is not None and resumed is not None else 0
                raise Diverged(cfg, where, resumed is not None, snapshot=snapshot) from None
            done, _, devs = good
            interrupt = Diverged(cfg, where, resumed is not None, kept=done, ran=ran)
        finally:
            trainer.close()  # the steps are over: the split's threads go, the BLAS threads are the caller's again
    return trainer, losses[:done], devs, interrupt


def saved(trainer):
    """What a training stopped early saves: the model as it is, or --keep-best's once it has one."""
    return (f"the model of step {trainer.best[0]}, its best dev evaluation so far" if trainer.best
            else "the model as it is")


def evaluated_at(cfg, done):
    """Whether the run evaluates dev after step `done`: every eval_every steps, and with --keep-best the
    last step too, as the best may be the model the run ends with."""
    return bool(cfg.eval_every) and done > 0 and (done % cfg.eval_every == 0 or (cfg.keep_best and done == cfg.steps))


def evaluations_after(cfg, done):
    """How many dev evaluations the run makes after step `done` (evaluated_at, counted)."""
    if not cfg.eval_every:
        return 0
    every = cfg.steps // cfg.eval_every - done // cfg.eval_every
    return max(every, 0) + int(cfg.keep_best and cfg.steps % cfg.eval_every != 0 and done < cfg.steps)


def last_dev_missing(cfg, done, devs):
    """Whether a run stopped after step `done` was stopped before that step's dev evaluation: the model
    it keeps then (--keep-best) is not known until --resume makes it."""
    return evaluated_at(cfg, done) and done not in devs


def evaluate_dev(trainer, cfg, devs, done, dev_set, held):
    """The dev loss after step `done`, recorded (keep_if_best) and returned. A stop signal (held, as in
    train) stops it between chunks, as a huge dev set takes minutes, and is raised: the run is saved
    without this evaluation, and --resume makes it first."""
    dev = model.split_loss(trainer.evaluated, *dev_set, stop=lambda: held)
    if dev is None:
        raise held.pop(0)
    keep_if_best(trainer, cfg, devs, done, dev)
    return dev


def keep_if_best(trainer, cfg, devs, done, dev):
    """Record step `done`'s dev loss, and with --keep-best keep its model if it is the best so far. The copy is
    made first: memory that runs out making it leaves neither (a loss recorded without its model would be a
    kept model that is not the best, which --resume refuses as damaged)."""
    if cfg.keep_best and (trainer.best is None or dev < devs[trainer.best[0]]):
        trainer.best = done, {k: p.copy() for k, p in trainer.evaluated.items()}
    devs[done] = dev


def _load_resumed(trainer, state, steps):
    """Put the Trainer in the saved state of a run `steps` steps in, or UsageError saying it is damaged."""
    try:
        trainer.load_state(state, steps=steps)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError) as e:
        # load_state's own refusals are ValueErrors that say what is wrong; the rest are numpy's or Python's
        why = str(e) if isinstance(e, ValueError) else f"{e.args[0]} is missing" if isinstance(e, KeyError) else (
            f"{type(e).__name__}: {e}")
        raise UsageError(f"the training state to resume from is damaged ({why}); start a new run") from None


def _check_kept(trainer, cfg, devs, dev_set, held):
    """UsageError if the model a resumed --keep-best run kept is not the one it recorded (kept_problem).
    That takes a dev evaluation, which is no step of the run: its seconds go to trainer.checked_seconds,
    which train's timing leaves out. A signal stops it between chunks (held, as in train)."""
    t0 = time.perf_counter()
    if cfg.keep_best and trainer.best is not None:
        say_slow(f"checking the kept model of step {trainer.best[0]} against its recorded dev loss",
                 trainer.best[1], len(dev_set[1]))
    problem = kept_problem(cfg, trainer.best, devs, dev_set, stop=lambda: held)
    trainer.checked_seconds = time.perf_counter() - t0
    if held:  # stopped part-way: nothing is known, nothing has changed
        raise held.pop(0)
    if problem:
        raise UsageError(f"the training state to resume from is damaged ({problem}); start a new run")


def say_slow(what, params, rows):
    """Tell the user, before it starts, of an evaluation that takes evaltime.SLOW_SECONDS or more."""
    seconds = evaltime.evaluation_seconds(params, rows)
    if seconds >= evaltime.SLOW_SECONDS:
        print(f"{line_break()}{what}: {rows:,} examples, about {seconds:,.0f} s", file=sys.stderr, flush=True)


def diverged_in_evaluation(cfg, e, interrupted_after, resumed):
    """The UsageError for a final evaluation whose arithmetic overflowed (FloatingPointError e): a model
    not worth saving. interrupted_after: the steps of a run stopped by a signal, which said it was
    saving the model (then say why it does not), or None."""
    where = f"in the final evaluation ({e})"
    if interrupted_after is not None:
        n = interrupted_after
        where += f", so the model reached when interrupted after {n} step{'s' if n != 1 else ''} is not worth saving"
    return UsageError(str(Diverged(cfg, where, resumed)))


def kept_problem(cfg, best, devs, dev, stop=None):
    """What is wrong with the model a resumed --keep-best run kept, or None: it keeps one from its first
    dev evaluation on, always the first of the lowest (a later one only replaces it when lower), and
    evaluated on the dev split `dev` (X, Y) it gives the dev loss recorded for its step. stop: as
    model.split_loss takes it; once it is true, None, the evaluation not made."""
    if not cfg.keep_best or (best is None and not devs):  # none before the first evaluation
        return None
    if best is None:
        return f"it has dev losses from {len(devs)} evaluation{'s' if len(devs) != 1 else ''} but no kept model"
    if not devs:
        return f"it has a model kept at step {best[0]} but no dev evaluations"
    step, params = best
    first = min(sorted(devs), key=devs.get)
    if step != first:
        where = "where no dev evaluation was made" if step not in devs else f"not the best, step {first}"
        return f"its kept model is from step {step}, {where}"
    try:  # finite values far from any it had (a tensor scaled, swapped) pass the state's checks, not this one
        again = model.split_loss(params, *dev, stop=stop)
    except FloatingPointError:  # logits too large to resolve (model.logits)
        again = math.inf
    if again is None:
        return None
    if not math.isclose(again, devs[step], rel_tol=model.REEVALUATION_TOLERANCE):
        return f"its kept model's dev loss is {again:.6g}, not the {devs[step]:.6g} recorded at step {step}"
    return None
