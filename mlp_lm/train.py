"""Train the MLP language model on a word list, evaluate it, and sample from it.

    python -m mlp_lm.train                      # the lecture's model on data/names.txt
    python -m mlp_lm.train --preset best        # the strongest recipe we found (docs/best.md)
    python -m mlp_lm.train --lr-sweep           # the lecture's learning-rate search
    python -m mlp_lm.train --data words.txt --steps 50000 --out runs/words

By default: minibatch SGD on the mean negative log likelihood, with the
lecture's schedule (the learning rate drops tenfold after half the steps). The
rest of the paper (direct connections, weight decay, its 1/(1 + r t) schedule)
and a modern recipe (AdamW, cosine decay, dropout, label smoothing, weight
averaging) are flags. Writes model.npz, metrics.json and loss.csv to --out (and
loss.png and embedding.png when matplotlib is installed).
"""
import math
import shlex
import sys
import time
from contextlib import nullcontext, suppress
from dataclasses import replace
from pathlib import Path

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.train", file=sys.stderr)
    sys.exit(2)

from . import atomic, evaltime, metrics, model, plots
from .cli import EXIT_BAD_INPUT, UsageError, exit_code, line_break, run, signals_held
from .data import describe, repeats_warning
from .sampling import one_line
from .sweep import sweep_into
from .runtime import blas_threads, check_fits, describe_threads, step_threads
from .resume import data_problem, resume_point, run_splits
from .runlock import FolderHold, RunLock, check_free
from .space import check_sweep_space
from .runs import (SAVED, SWEEP_FILES, check_space, claim_default_out, claim_fresh,
                   files_in_the_way, prepare_out, save_run_or_rescue)
from .loop import Diverged, diverged_in_evaluation, last_dev_missing, train
from .train_flags import parse_args
from .advice import accents_warning, futile_warning, kept_best_line, quality_warning, size_warnings
from .config import describe_training
from .snapshot import run_record, snapshots_for
from .trainer import memory_needed
from .wordfile import slow_reading


def main(argv=None):
    opts = parse_args(argv)
    resumed = None
    if opts.resume:
        if opts.data == "":  # Path("") would be the current folder
            raise UsageError("--data is empty; pass where the run's data file is now, or leave --data out")
        check_free(opts.out)  # a training writing there now (a --force, say) decides what there is to resume
        # a damaged or finished run says so before any work (a finished one after checking a --data given)
        cfg, preset, resumed, note = resume_point(opts.out, opts.data)
        if resumed is None:
            print(note)
            return 0
    else:
        cfg, preset = opts.cfg, opts.preset
    if resumed is not None and opts.data is not None:  # the run's data, moved: the bytes are checked below
        cfg = replace(cfg, data=str(Path(opts.data).resolve()))  # and the run records where it is now
    elif resumed is not None and not Path(cfg.data).exists():
        raise UsageError(f"the run in {opts.out} was trained on {cfg.data}, which is not there any more; put "
                         f"the file back there, or pass where it is now with --data (the same bytes), to resume it")
    if notice := slow_reading(cfg.data):  # the data line comes once the examples are built
        print(notice, file=sys.stderr, flush=True)
    splits = run_splits(cfg.data, cfg.block_size, resumed, opts.out)
    check_fits(memory_needed(cfg, len(splits.vocab)),
               f"training (V={len(splits.vocab)} T={cfg.block_size} E={cfg.n_embd} H={cfg.n_hidden}, "
               f"batch {cfg.batch_size}, {cfg.steps:,} steps)",
               "use smaller sizes (--n-hidden, --n-embd, --block-size, --batch-size, --steps)"
               + (", or leave out --fold, whose tables grow with the vocabulary" if cfg.fold else "")
               if resumed is None else
               "a run this size cannot be resumed here: resume it on a machine with more memory, or start a new "
               "one with smaller sizes")
    if resumed is not None and (problem := data_problem(resumed, splits, cfg.data, opts.out, opts.data is not None)):
        raise UsageError(problem)
    n_threads = opts.threads or step_threads(cfg.batch_size, cfg.block_size * cfg.n_embd, cfg.n_hidden,
                                             len(splits.vocab), cfg.fold)
    follow_load = opts.threads is None  # --threads N: fixed; else fewer threads while others are busy
    with blas_threads(n_threads):
        if resumed is not None:
            out = Path(opts.out)
            with RunLock(out):
                atomic.check_save_place(out, SAVED)
                # Read again now that the folder is ours: another training may have saved it since.
                cfg_now, preset, resumed, note = resume_point(out)
                if opts.data is not None:  # the data path is the one given: the rest must be the same
                    cfg_now = replace(cfg_now, data=cfg.data)
                if cfg_now != cfg or (resumed is not None and splits.sha256 != resumed[3]):
                    raise UsageError(f"the run in {opts.out} was replaced while this command started; "
                                     f"run it again")
                print(note)
                if resumed is None:
                    return 0
                return train_into(out, cfg, preset, False, n_threads, splits, resumed[:3], follow_load, resumed[5])
        return run_training(cfg, preset, opts.out, opts.sweep, n_threads, splits, opts.force, follow_load)


def run_training(cfg, preset, out_arg, sweep, n_threads, splits, force=False, follow_load=False):
    made = out_arg is None or not Path(out_arg).exists()  # a default folder is new, or empty but for a lock
    if out_arg is None:
        out, lock = claim_default_out(cfg.data)  # a new numbered folder, already locked
    else:
        # room for a side folder (interrupted/, unconverged/) only where there are files for a run not to replace
        out, lock = prepare_out(out_arg, sweep, side=bool(files_in_the_way(out_arg))), None
    born = FolderHold(out) if made else None  # the folder made: never another one made at the path since
    try:
        with lock or RunLock(out):  # whether the folder holds a model is asked only once it is ours
            atomic.recover(out)  # a save cut short after its commit is finished before we look
            atomic.check_save_place(out, SWEEP_FILES[:1] if sweep else SAVED)  # the sweep's table is all it must write
            held = files_in_the_way(out, sweep) if out_arg is not None and not force else []
            if "model.npz" in held:
                raise UsageError(f"{out_arg} already holds a model (model.npz); pass --force to replace it, "
                                 f"--resume to continue it, or another --out (without --out, each run gets a "
                                 f"new folder)")
            if held:  # the user's own files, or an earlier run's (a sweep's, for a sweep): replaced only when asked
                raise UsageError(f"{out_arg} already holds {', '.join(held)}, which this "
                                 f"{'sweep' if sweep else 'run'} would replace or remove; pass --force to let "
                                 f"it, or another --out")
            return train_into(out, cfg, preset, sweep, n_threads, splits, None, follow_load)
    except (UsageError, KeyboardInterrupt, OSError, MemoryError):  # refused (no room for the files, say), diverged,
        # a sweep stopped or unable to write its table: leave no empty folder of ours (a stopped training has saved)
        if made and not born.lost():
            with suppress(OSError):
                out.rmdir()  # only if empty
        raise


def train_into(out, cfg, preset, sweep, n_threads, splits, resumed=None, follow_load=False, timing=(0.0, 0)):
    V = len(splits.vocab)
    params = model.init_params(V, cfg.block_size, cfg.n_embd, cfg.n_hidden, direct=cfg.direct,
                               seed=cfg.seed, init=cfg.init, dtype=np.dtype(cfg.dtype))
    print(describe(cfg.data, splits))
    for warning in filter(None, (repeats_warning(splits), accents_warning(splits),
                                 *(size_warnings(cfg, splits) if resumed is None else ()))):
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
            estimate = (0.0 if held or undone is not None else
                        evaltime.evaluation_seconds(params, rows, refine=interrupt is None))
            skip, line = evaltime.final_evaluation(rows, estimate, interrupt is not None, undone)
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
            when = "again" if interrupt is not None else "during the final evaluation"
            print(f"{line_break()}interrupted {when}: saving the model, not evaluated", file=sys.stderr)
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
            print(f"trained {ran - first} step{'s' if ran - first != 1 else ''} in {seconds:.1f}s "
                  f"({(ran - first) / max(seconds, 1e-9):,.0f} steps/s)" + (f", steps {first + 1} to {ran}" if first else "")
                  + (f", and diverged: kept the run as it was at step {done}, its best dev evaluation" if diverged else ""))
        if cfg.keep_best and not diverged:  # a diverged run's line says what it kept
            print(kept_best_line(best_step, devs, done))
        for name in ("train", "dev", "test"):
            if result:
                print(f"{name + ' loss':10s} {metrics.describe(result[name + '_loss'])}")
        n_items = sum(len(part) for part in splits.items)
        if futile and not unfinished:  # stopped with steps to go, it has not had its chance: --resume is the advice
            print(futile_warning(result, losses, V, n_items, cfg, devs, resumed is not None), file=sys.stderr)
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
        print(f"wrote {', '.join(written)} to {out}{' (' + no_pictures + ')' if no_pictures else ''}")
        print(f"sample more: python -m mlp_lm.sample --checkpoint {shlex.quote(str(out / 'model.npz'))}")
        if unfinished:
            print(f"to continue: python -m mlp_lm.train --resume --out {shlex.quote(str(out))}", file=sys.stderr)
        if diverged:
            raise UsageError(f"{diverged}; the run as it was at step {diverged.kept}, its best dev evaluation "
                             f"(dev {devs[diverged.kept]:.4f}), is saved in {out}" + ("" if result else
                             f", not evaluated: python -m mlp_lm.evaluate --checkpoint "
                             f"{shlex.quote(str(out / 'model.npz'))} evaluates it"),
                             exit_code(interrupt) if interrupt is not None else EXIT_BAD_INPUT)  # a signal's, if one came
        if no_memory:  # saved, and told after the rest of the report
            raise UsageError(f"{no_memory}; it is saved in {out}, not evaluated: python -m mlp_lm.evaluate "
                             f"--checkpoint {shlex.quote(str(out / 'model.npz'))} evaluates it where there is more")
        return exit_code(interrupt) if interrupt is not None else 0
    except KeyboardInterrupt as e:
        resume = f"; to continue: python -m mlp_lm.train --resume --out {shlex.quote(str(out))}" if unfinished else ""
        pictures = " (its pictures perhaps not all drawn)" if drawing and not drawn else ""
        print(f"{line_break()}interrupted ({e.args[0] if e.args else 'SIGINT'}) while reporting: the run is saved in full in "
              f"{out}{pictures}{resume}", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    run(main, "python -m mlp_lm.train", keep_going_without_stdout=True)
