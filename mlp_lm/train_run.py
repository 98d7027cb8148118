"""One run's training into its folder, for `python -m mlp_lm.train` (train.py, which reads the flags and
claims the folder, new or resumed): the data and model lines, the room its files need, the steps with the
stop signals held, the final evaluation, the save (into the folder, a side folder beside an earlier run, or
the temporary directory when the folder is not the run's any more) and the report. Or, with --lr-sweep, the
sweep instead of the run."""
import math
import sys
import time
from contextlib import nullcontext, suppress

import numpy as np

from . import atomic, evaltime, metrics, model, plots, shell
from .advice import dev_only_note, futile_warning, kept_best_line, quality_warning
from .data_advice import data_warnings, size_warnings
from .cli import EXIT_BAD_INPUT, UsageError, exit_code, line_break, signals_held
from .config import describe_training
from .data import describe
from .loop import diverged_in_evaluation, last_dev_missing, train
from .progress import steps_per_second
from .rescue import save_run_or_rescue
from .runlock import FolderHold
from .runs import check_space, claim_fresh, files_in_the_way, resume_command
from .runtime import describe_threads
from .sampling import one_line
from .snapshot import run_record, snapshots_for
from .space import check_sweep_space
from .stops import Diverged, OutOfMemory
from .sweep import sweep_into


def train_into(out, cfg, preset, sweep, n_threads, splits, resumed=None, follow_load=False, timing=(0.0, 0)):
    V = len(splits.vocab)
    params = model.init_params(V, cfg.block_size, cfg.n_embd, cfg.n_hidden, direct=cfg.direct,
                               seed=cfg.seed, init=cfg.init, dtype=np.dtype(cfg.dtype))
    print(describe(cfg.data, splits))
    for warning in (*data_warnings(splits), *(size_warnings(cfg, splits) if resumed is None else ())):
        print(warning, file=sys.stderr)
    print(f"model: T={cfg.block_size} E={cfg.n_embd} H={cfg.n_hidden}{' direct' if cfg.direct else ''} "
          f"init={cfg.init}: {model.num_params(params):,} parameters")

    if sweep:
        check_sweep_space(out, cfg.steps)
        sweep_into(out, params, *splits.train, cfg)
        return 0

    room = check_space(out, cfg, model.num_params(params), resumed is not None)  # a run that cannot be saved: refused
    print(describe_training(cfg) + "; " + describe_threads(cfg.batch_size, n_threads))
    if cfg.fold and V >= cfg.batch_size:  # a table row for every symbol costs what a row of the batch does
        print(f"warning: --fold builds tables of {V} rows (the vocabulary) for each position, no less work than the "
              f"plain path's {cfg.batch_size} (the batch); it pays only for a batch larger than the vocabulary",
              file=sys.stderr)
    # From before the first step until every file is written, the stop signals are held (cli.py): the
    # loop honours them between steps and the final evaluation between chunks of a split, and one that comes
    # while another is being handled waits too (a second Ctrl-\ aside), so no signal loses the run on its way to disk.
    trainer, interrupt, diverged, no_memory = None, None, None, None
    first = len(resumed[1]) if resumed else 0  # steps taken before this command
    own = resumed is not None or not (out / "model.npz").exists()  # a useless run is saved in `out` itself
    # files a new run replaces only whole (an earlier run's, or a user's loss.csv: --force): its snapshots and a
    # stopped run go to a side folder instead
    whole_only = [] if resumed is not None else files_in_the_way(out)
    hold = FolderHold(out)  # is it still this run's folder when it saves? (removed, or replaced meanwhile)
    snapshots = snapshots_for(out, cfg, preset, splits, first, room, timing, hold, bool(whole_only))  # as it trains
    with signals_held() as held:
        try:
            t0 = time.perf_counter()
            trainer, losses, devs, interrupt = train(cfg, splits, params, resumed, n_threads, follow_load, held,
                                                     snapshots)
            # diverged after a dev evaluation: the run as it was there is saved, as a run that went wrong
            diverged, interrupt = (interrupt, None) if isinstance(interrupt, Diverged) else (None, interrupt)
            seconds = time.perf_counter() - t0 - trainer.checked_seconds  # the run's own time, as in one go
            best_step, params = trainer.best or (None, trainer.evaluated)  # --keep-best: the best dev evaluation's
            result, rows = {}, sum(len(getattr(splits, s)[1]) for s in ("train", "dev", "test"))
            last = interrupt is not None and len(losses) == cfg.steps and last_dev_missing(cfg, cfg.steps, devs)
            undone = cfg.steps if last else None  # stopped before the last step's dev evaluation: none to time
            out_of_memory = isinstance(interrupt, OutOfMemory)  # an evaluation needs memory too: left to --resume
            estimate = (0.0 if held or undone is not None or out_of_memory else
                        evaltime.evaluation_seconds(params, rows, refine=interrupt is None))
            skip, line = ((True, None) if out_of_memory else
                          evaltime.final_evaluation(rows, estimate, interrupt is not None, undone))
            if line and (undone is not None or not held):  # (not a signal in the estimate)
                print(line, file=sys.stderr, flush=True)
            with np.errstate(over="raise", invalid="raise"):
                for name in () if skip else ("train", "dev", "test"):  # a signal since the training ended: keep
                    loss = model.split_loss(params, *getattr(splits, name), stop=lambda: held)  # the model, unevaluated
                    if loss is None:
                        break
                    result[f"{name}_loss"] = loss
        except (FloatingPointError, Diverged) as e:  # nothing worth saving
            if snapshots:
                snapshots.diverged()
            if isinstance(e, Diverged):
                raise UsageError(str(e)) from None
            raise diverged_in_evaluation(cfg, e, len(losses) if interrupt is not None else None,
                                         resumed is not None) from None
        except KeyboardInterrupt as e:  # raised outright in the evaluation, not signalled: the same as a held signal
            if trainer is None:
                raise
            held.append(e)
        except MemoryError:  # the evaluation's chunks did not fit: the trained model is kept all the same
            if trainer is None:
                raise
            result, no_memory = {}, "not enough memory to evaluate the model"
        if held:
            when = ("again" if isinstance(interrupt, KeyboardInterrupt) else "as well" if interrupt is not None
                    else "during the final evaluation")
            print(f"{line_break()}interrupted {when}: saving the model, not evaluated", file=sys.stderr)
            if isinstance(interrupt, OutOfMemory):  # the command ends with the signal's exit code, as a diverged run's
                interrupt.code = exit_code(held[0])
            interrupt, result = interrupt or held[0], {}
            held.clear()  # from here on, the list holds the signals that come during the save
        done = len(losses)
        ran = diverged.ran if diverged else done  # steps taken, the ones after the state kept included
        futile = bool(result) and result["dev_loss"] >= math.log(V) and not diverged  # no better than uniform
        # more steps, or the evaluation, to do (a diverged run has none that --resume could do)
        unfinished = interrupt is not None and (done < cfg.steps or not result) and not diverged
        kept, side_lock, unusable = None, None, None
        # A piece of a --force run (interrupted: --force asked for the whole run) never replaces the files in
        # --out, nor a useless model (unconverged) the model there: each goes to a side folder of its own. A
        # resumed run's model in --out is its own unfinished state, which it always replaces (else every
        # resume would start again from there).
        lost = hold.lost()  # then never into `out`, which may be another run's: the temporary directory
        side = None if lost else "interrupted" if interrupt is not None and whole_only else (
            "unconverged" if interrupt is None and (futile or diverged) and not own else None)
        taken = None
        if side:
            kept = out if side == "interrupted" else None
            taken = snapshots.side_folder() if side == "interrupted" and snapshots else None  # where it snapshotted
            try:
                out, side_lock = taken or claim_fresh(out / side)
            except (UsageError, OSError) as e:  # a full disk, say: the run goes to the temporary directory
                out, unusable = out / side, str(e)
        metrics.add_measures(result)
        config, summary, state, novelty = run_record(
            cfg, preset, splits, trainer, params, losses, devs, result, seconds=seconds, ran=ran,
            interrupted=interrupt is not None,
            diverged_at=diverged.ran if diverged else None, best_step=best_step, timing=timing)
        samples, ended = summary["samples"], summary["samples_ended"]
        try:
            with side_lock or nullcontext():
                save_run_or_rescue(out, params, splits.vocab, config, state, summary, losses, devs,
                                   unusable=unusable or lost, unfinished=unfinished)
        except (UsageError, atomic.CheckpointError) as e:  # saved elsewhere, or lost: no empty side folder stays
            if snapshots:
                e = snapshots.save_failed(e)  # (taking back a snapshot that would mislead, in `out` or beside it)
            if side:
                with suppress(OSError):
                    out.rmdir()
            # saved whole elsewhere, or its model alone: what it learned is still news
            if (isinstance(e, UsageError) or getattr(e, "model_alone", None)) and not diverged:
                if ran > first:
                    print(trained_line(ran - first, seconds, first))
                print_losses(result)
            if diverged:  # what was to be saved is the best of a run that blew up: say so too
                raise UsageError(f"{diverged}; kept the run as it was at step {diverged.kept}, but {e}") from None
            if interrupt is not None and isinstance(e, UsageError):  # saved elsewhere: the stop signal's exit code
                e.code = exit_code(interrupt)
            raise e from None
        if snapshots and not taken:
            snapshots.saved_whole()  # a --force run's snapshots, in a side folder, go: it is saved whole
    drawing = drawn = False
    try:  # the run is saved: a stop signal from here on cuts the report short, never the run
        if kept is not None:
            model_there = "model.npz" in whole_only  # else the files of a run, or a user's, that --force replaces whole
            print(f"the {'model' if model_there else ', '.join(whole_only)} already in {kept} "
                  f"{'stays' if model_there or len(whole_only) == 1 else 'stay'}: this interrupted run went to {out}",
                  file=sys.stderr)
        if held and interrupt is None:  # a signal during the save: it waited, so say what became of the run
            print(f"{held[0].args[0]} while saving: waited until the run was written in full", file=sys.stderr)
        interrupt = interrupt or (held[0] if held else None)

        if ran > first:
            print(trained_line(ran - first, seconds, first)
                  + (f", and diverged: kept the run as it was at step {done}, its best dev evaluation" if diverged else ""))
        if cfg.keep_best and not diverged:  # a diverged run's line says what it kept
            print(kept_best_line(best_step, devs, done))
        print_losses(result)
        n_items = sum(len(part) for part in splits.items)
        if futile and not unfinished:  # stopped with steps to go, it has not had its chance: --resume is the advice
            print(futile_warning(result, losses, V, n_items, cfg, devs, resumed is not None, dev_only_note(splits)),
                  file=sys.stderr)
        elif not unfinished and not diverged:
            if overfit := quality_warning(result, devs, losses, splits, n_items, cfg, resumed is not None):
                print(overfit, file=sys.stderr)
        print(f"samples ({novelty.summary()}):" if samples else "samples:", one_line(samples, ended))
        written = ["model.npz", "metrics.json", "loss.csv"]
        drawing = True
        pictures, no_pictures, stop, _ = plots.draw(
            [(out / "loss.png", lambda plt, path: plots.plot_loss(plt, losses, devs, path, best_step)),
             (out / "embedding.png", lambda plt, path: plots.plot_embedding(plt, params["C"], splits.vocab, path))],
            "the run")
        drawn = True
        written += [path.name for path in pictures]
        if stop:
            raise stop
        print(f"wrote {', '.join(written)} to {shell.shown(out)}{' (' + no_pictures + ')' if no_pictures else ''}")
        print(f"sample more: python -m mlp_lm.sample --checkpoint {shell.path(out / 'model.npz')}")
        if isinstance(interrupt, OutOfMemory):
            raise UsageError(f"{interrupt}; the run is saved in {out}, unevaluated: continue it where there is more "
                             f"memory (free some, or raise ulimit -v) with {resume_command(out)}, or start one with "
                             f"smaller sizes", exit_code(interrupt))
        if unfinished:
            print(f"to continue: {resume_command(out)}", file=sys.stderr)
        if diverged:
            raise UsageError(f"{diverged}; the run as it was at step {diverged.kept}, its best dev evaluation "
                             f"(dev {devs[diverged.kept]:.4f}), is saved in {out}" + ("" if result else
                             f", not evaluated: python -m mlp_lm.evaluate --checkpoint "
                             f"{shell.path(out / 'model.npz')} evaluates it"),
                             exit_code(interrupt) if interrupt is not None else EXIT_BAD_INPUT)  # a signal's, if one came
        if no_memory:  # saved, and told after the rest of the report
            raise UsageError(f"{no_memory}; it is saved in {out}, not evaluated: python -m mlp_lm.evaluate "
                             f"--checkpoint {shell.path(out / 'model.npz')} evaluates it where there is more")
        return exit_code(interrupt) if interrupt is not None else 0
    except KeyboardInterrupt as e:
        resume = f"; to continue: {resume_command(out)}" if unfinished else ""
        pictures = " (its pictures perhaps not all drawn)" if drawing and not drawn else ""
        print(f"{line_break()}interrupted ({e.args[0] if e.args else 'SIGINT'}) while reporting: the run is saved in full in "
              f"{out}{pictures}{resume}", file=sys.stderr)
        return exit_code(e)


def trained_line(steps, seconds, first=0):
    """'trained 200000 steps in 15.8s (12,658 steps/s)', with ', steps 1001 to 2000' for a resumed run."""
    took = f"{seconds:.1f}s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"  # not "in 0.0s"
    rate = steps_per_second(steps / max(seconds, 1e-9))
    return (f"trained {steps} step{'s' if steps != 1 else ''} in {took} ({rate} steps/s)"
            + (f", steps {first + 1} to {first + steps}" if first else ""))


def print_losses(result):
    """The evaluated run's three losses, a line each (nothing for a run not evaluated)."""
    for name in ("train", "dev", "test") if result else ():
        print(f"{name + ' loss':10s} {metrics.describe(result[name + '_loss'])}")
