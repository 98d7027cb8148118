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

This module reads the flags and finds the run's folder (a new one, or the stopped run to resume);
train_run.py trains the run there, from its first step to its report.
"""
import sys
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.train", file=sys.stderr)
    sys.exit(2)

from . import atomic
from .cli import UsageError, run
from .runtime import blas_threads, check_fits, step_threads
from .resume import data_problem, resume_point, run_splits, saved_threads
from .runlock import FolderHold, RunLock, check_free
from .runs import SAVED, SWEEP_FILES, claim_default_out, data_in_the_way, files_in_the_way, prepare_out
from .train_flags import parse_args
from .train_run import train_into
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
    # (without --out the folder is a new one, with no data file in it)
    if opts.out is not None and (name := data_in_the_way(opts.out, cfg.data, opts.sweep)):
        raise UsageError(f"the data file {cfg.data} is {name} in {opts.out}, which this "
                         f"{'sweep' if opts.sweep else 'run'} would write over or remove; move the word list "
                         f"elsewhere" + (" and pass where it is now with --data" if opts.resume else
                                         ", or pass another --out"))
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
    fixed = opts.threads or saved_threads(resumed)  # a stopped run given --threads goes on with it
    n_threads = fixed or step_threads(cfg.batch_size, cfg.block_size * cfg.n_embd, cfg.n_hidden,
                                      len(splits.vocab), cfg.fold)
    follow_load = not fixed  # --threads N: fixed; else fewer threads while others are busy
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


if __name__ == "__main__":
    run(main, "python -m mlp_lm.train", keep_going_without_stdout=True)
