"""Train the configurations in the docs' results table, fit the n-grams, mix, and write the table.

    python -m mlp_lm.results                 # every run (13 to 28 minutes on our 2-core machines,
                                             # 10 to 21 of them the best preset), then
                                             # docs/results.md and docs/embedding.png
    python -m mlp_lm.results --only best     # retrain only these runs; the rest from their metrics.json
    python -m mlp_lm.results --no-train      # only rebuild the table from runs/results/*/metrics.json
    python -m mlp_lm.results --steps 2000    # a quick look: its table goes to runs/results-quick/results.md

Every number in docs/results.md comes from a run's metrics.json or from the
counting and mixture code, never from a hand-typed table. Only a full run (or
--write-docs) writes into docs/. The table gives the steps the runs were trained
for, read from their metrics.json. The runs are regenerated: each run retrained
replaces what its folder held, even when it gets nowhere or is stopped.
"""
import errno
import os
import sys
import time
from functools import partial
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.results", file=sys.stderr)
    sys.exit(2)

from . import checkpoint, mixture, runtime, shell
from .atomic import write_whole
from .cli import STOP_CODES, ArgumentParser, UsageError, exit_code, run
from .flags import positive_int
from .counting import KneserNey, choose_k
from .data import SPLIT_SEED, load_splits
from .jsonout import json_text
from .aside import check_run_place, recover_set_aside, results_lock, retrain
from .results_markdown import render, written_here
from .runs import resume_command
from .results_table import (CONFIGS, MIX_ORDER, check_read_back, check_replaceable, complete, read_run, stranger,
                            trained_steps)
from .train_flags import parse_args as parse_train_flags
from .wordfile import DEFAULT_DATA, NO_CHECKOUT, digest, has_checkout, in_checkout

PICTURE_RUN = "embd2"
MIXED = ("scaled", "paper", "best")  # runs mixed with the n-gram below
NGRAM_ORDERS = range(2, 9)


def ngram_rows(data):
    """{(smoothing, n): {"k", "dev_loss", "test_loss", ...}} for add-k and Kneser-Ney, n = 2..8."""
    rows = {}
    for n in NGRAM_ORDERS:
        splits = load_splits(data, n - 1)
        V = len(splits.vocab)
        k, addk = choose_k(*splits.train, *splits.dev, n, V)
        kn = KneserNey(n).fit(*splits.train, V)
        for name, m, extra in (("add-k", addk, {"k": k}), ("kn", kn, {})):
            rows[(name, n)] = {**extra, **{f"{s}_loss": m.nll(*getattr(splits, s)) for s in ("train", "dev", "test")}}
    return rows


def mixture_row(run_dir, n=MIX_ORDER):
    params, vocab, config = checkpoint.load(run_dir / "model.npz")
    # the default word list, not the path the run recorded (a checkout since moved): read_run holds the
    # run's sha256 to the default list's. A config may leave out the split's seed (checkpoint.load allows
    # only the default one): it had raised a KeyError here, after every run was read back.
    splits = load_splits(in_checkout(DEFAULT_DATA), max(config["block_size"], n - 1),
                         config.get("split_seed", SPLIT_SEED))
    sets = {"dev": splits.dev, "test": splits.test}
    return mixture.evaluate(params, sets, splits.train, n)


def main(argv=None):
    ap = ArgumentParser(prog="python -m mlp_lm.results", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", metavar="DIR", default=None,
                    help="where the runs go (default runs/results, or runs/results-quick with --steps)")
    ap.add_argument("--docs", metavar="DIR", default=None,
                    help="the existing folder where a full run (or --write-docs) writes results.md and "
                         "embedding.png (default the checkout's docs/)")
    ap.add_argument("--no-train", action="store_true",
                    help="only rebuild the table from existing runs, into --runs (with --write-docs, docs too)")
    ap.add_argument("--only", metavar="NAMES", default=None,
                    help=f"comma-separated runs to retrain ({', '.join(CONFIGS)}); the others are read back")
    ap.add_argument("--steps", metavar="N", type=positive_int, default=None,
                    help="override the steps of every run (a quick look: the table goes to --runs, not docs)")
    ap.add_argument("--write-docs", action="store_true",
                    help="write the table to docs/ (or --docs) even with --steps, --only or --no-train")
    args = ap.parse_args(argv)
    only, runs, docs, docs_wanted = check_flags(args)  # before any work: a bad flag costs nothing
    for name in ([] if args.no_train else [n for n in CONFIGS if n in only]):  # and a run with nowhere to go
        check_run_place(runs / name)
        check_replaceable(name, runs / name)  # nor one that would remove what results did not put there
    with results_lock(runs, make=not args.no_train) as held:
        for name in CONFIGS if held else ():  # a results run killed outright may have left an earlier run set aside
            done = recover_set_aside(runs / name, partial(stranger, name), complete)
            if done:
                print(f"results: {done}", file=sys.stderr)
        return make_table(args, only, runs, docs, docs_wanted)


def make_table(args, only, runs, docs, docs_wanted):
    """results' work once its flags are checked and its runs folder is its own: train, count, write."""
    data_sha256 = digest(in_checkout(DEFAULT_DATA))  # the word list every run must be of
    # the runs read back, checked (and their models evaluated) before any training, and only then
    read_back = check_read_back([n for n in CONFIGS if args.no_train or n not in only], runs, data_sha256)
    rows = []
    for name, (what, flags) in CONFIGS.items():
        out = runs / name
        if not args.no_train and name in only:
            extra = ["--steps", str(args.steps)] if args.steps else []
            print(f"== {name}: python -m mlp_lm.train {' '.join(flags + extra)}", flush=True)
            code, saved = retrain(out, flags + extra)  # replaces the earlier run once it has saved anything
            if code in STOP_CODES:  # a stop signal: stop here, as the training did
                print(how_to_finish(args, name, only, runs, docs_wanted, saved), file=sys.stderr)
                return code
            if code != 0:  # (train's advice to pass another --out means another --runs here, which sets it)
                kept = " (the earlier run there stays)" if not saved and (out / "metrics.json").is_file() else ""
                raise UsageError(f"the run {name} did not finish (exit code {code}){kept}; see its messages above "
                                 f"(its --out is {shell.shown(out)}, which results' --runs decides)")
            if not (out / "metrics.json").is_file():
                raise UsageError(f"the run {name} wrote no {out / 'metrics.json'}; see its messages above")
            try:  # the new run is checked as any run read back is: its model evaluated again
                read_back[name] = read_run(name, runs, data_sha256)
            except KeyboardInterrupt as e:  # it is saved whole: only the rest is left to do
                print(how_to_finish(args, name, only, runs, docs_wanted, True), file=sys.stderr)
                return exit_code(e)
            # An earlier run an unfinished retraining had set aside (kept until a run in its place was finished,
            # which this one is) goes now, not at the next results run.
            done = recover_set_aside(out, partial(stranger, name), complete)
            if done:
                print(f"results: {done}", file=sys.stderr)
        rows.append((name, what, read_back[name]))
    steps = trained_steps(rows)  # from the runs themselves, so the table says what they were trained for
    to_docs = docs_wanted
    target = docs if to_docs else runs
    data = in_checkout(DEFAULT_DATA)  # every run is of it (read_run holds their sha256 to it), wherever they were trained
    t0 = time.perf_counter()
    try:
        ngrams = ngram_rows(data)
        mixes = {name: mixture_row(runs / name) for name in MIXED}
    except KeyboardInterrupt as e:  # the runs are trained and saved: only the counting is left to redo
        print(how_to_finish(args, None, only, runs, docs_wanted, True), file=sys.stderr)
        return exit_code(e)
    print(f"n-grams and mixtures in {time.perf_counter() - t0:.1f}s")
    machine = f"a {runtime.machine_description('machine')}"  # "Seconds are ..., on a 2-core x86_64 Linux machine (...)"
    tables = json_text({"ngrams": {f"{s}-{n}": m for (s, n), m in ngrams.items()}, "mixtures": mixes})  # strict JSON
    check_no_link_to_docs(runs, docs, to_docs)  # again: the runs took long enough for one to be made
    try:
        target.mkdir(parents=True, exist_ok=True)  # the runs folder; docs was checked to be there
        write_whole(runs / "tables.json", tables.encode())  # first: a failure here leaves no new table
        write_whole(target / "results.md", render(rows, ngrams, mixes, machine, steps).encode())  # never half a one
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # the runs are saved: only the writing is left to redo
            raise UsageError(f"cannot write the table: {e.strerror} ({e.filename}); free some space there, then "
                             f"write it from the saved runs: {table_command(args, runs, to_docs)}") from None
        raise UsageError(f"cannot write the table: {e.strerror or e} ({e.filename}); pass "
                         + ("writable --docs and --runs" if to_docs else "a writable --runs")) from None
    print(f"wrote {shell.shown(target / 'results.md')}")
    picture = runs / PICTURE_RUN / "embedding.png"
    if not to_docs:
        print(f"(a quick or partial run, or --no-train: {docs} left as it was; --write-docs to overwrite it)")
    elif picture.is_file():
        try:
            write_whole(target / "embedding.png", picture.read_bytes())
        except OSError as e:
            raise UsageError(f"cannot copy the embedding picture: {e.strerror or e} ({e.filename}); "
                             f"the table is written") from None
        print(f"wrote {shell.shown(target / 'embedding.png')} (from the {PICTURE_RUN} run)")
    else:
        print(f"no {picture} (matplotlib missing?): {target / 'embedding.png'} left as it was")
    return 0


def check_flags(args):
    """(runs to train, runs folder, docs folder, whether the flags ask for docs), or UsageError for
    flags that contradict each other or a folder that cannot be used."""
    if args.no_train and args.steps is not None:
        raise UsageError("--no-train trains nothing, so --steps has nothing to set; leave it out (the table "
                         "gives the steps each run was trained for), or leave out --no-train to retrain")
    if args.no_train and args.only is not None:
        raise UsageError("--no-train retrains nothing, so --only has nothing to choose; leave out one of the two")
    only = set(CONFIGS) if args.only is None else set(args.only.split(","))
    if "" in only:
        raise UsageError(f"--only {args.only!r} has an empty name; list runs with commas between them, "
                         f"e.g. --only lecture,best")
    if only - set(CONFIGS):
        raise UsageError(f"--only: no run named {', '.join(sorted(only - set(CONFIGS)))}; the runs are "
                         f"{', '.join(CONFIGS)}")
    for name in [] if args.no_train else [n for n in CONFIGS if n in only]:  # train's own checks, before any
        parse_train_flags(CONFIGS[name][1] + (["--steps", str(args.steps)] if args.steps else []))  # work
    for flag, value in (("--runs", args.runs), ("--docs", args.docs)):
        if value == "":
            raise UsageError(f"{flag} is empty; name a folder, or leave {flag} out for the default")
    if not has_checkout() and not Path(DEFAULT_DATA).is_file():  # every run of the table is of the names
        raise UsageError(f"the results table is of runs on {DEFAULT_DATA}: {NO_CHECKOUT}; run this from a clone")
    runs = Path(args.runs or in_checkout("runs/results-quick" if args.steps else "runs/results"))
    if runs.exists() and not runs.is_dir():
        raise UsageError(f"--runs {runs} is not a folder; name a folder for the runs (made if missing)")
    if runs.is_symlink() and not runs.exists():
        raise UsageError(f"--runs {runs} is a link to nothing (a missing folder, or links in a loop); name the folder itself")
    docs_wanted = args.write_docs or (args.steps is None and args.only is None and not args.no_train)
    if args.docs is not None and not docs_wanted:
        raise UsageError(f"--docs is only written by a full run or with --write-docs, and this command's table "
                         f"goes to {runs}; add --write-docs or leave --docs out")
    docs = Path(args.docs or in_checkout("docs"))
    # The runs' own results.md would be the docs' one, unasked for (realpath leaves a symlink loop as it is,
    # where Path.resolve raises)
    if os.path.realpath(runs) == os.path.realpath(docs):
        raise UsageError(f"--runs {runs} is the docs folder, which holds the documented results.md; name another "
                         f"folder for the runs (the table goes into it, and into {docs} with --write-docs)")
    check_no_link_to_docs(runs, docs, docs_wanted)
    if docs_wanted:
        if not docs.exists():
            raise UsageError(f"--docs {docs} does not exist; name the existing folder for results.md "
                             f"(default the checkout's docs/)")
        if not docs.is_dir():
            raise UsageError(f"--docs {docs} is not a folder; name the folder for results.md "
                             f"(default the checkout's docs/)")
        if not os.access(docs, os.W_OK | os.X_OK):
            raise UsageError(f"cannot write to --docs {docs}; name a folder this program can write to")
    return only, runs, docs, docs_wanted


def check_no_link_to_docs(runs, docs, docs_wanted):
    """UsageError if a file this command writes (the runs' tables.json always; the docs' results.md and
    embedding.png with docs, else the runs' results.md) is a symbolic link, which atomic.write_whole would
    write through, over whatever it names: the documented table, the training data, a model (hostile
    testers' links, each written over, once while the command said docs were left as they were); or is
    there but no regular file (a folder), which the write would meet only after the counting; or is a file
    results did not write (results_markdown.written_here: a user's notes in the folder named). The runs'
    results.md linking to the documented one is named as such."""
    written = [runs / "tables.json"] + ([docs / "results.md", docs / "embedding.png"] if docs_wanted else
                                        [runs / "results.md"])  # a link in --docs too: it had replaced names.txt
    for path in written:
        if path.is_symlink():
            target = os.readlink(path)
            if path == runs / "results.md" and os.path.realpath(path) == os.path.realpath(docs / "results.md"):
                raise UsageError(f"{path} is a link to {docs / 'results.md'}, the documented table, which this "
                                 f"command leaves as it is; remove the link, or add --write-docs to write both")
            raise UsageError(f"{path} is a symbolic link (to {target}), which writing the table would write "
                             f"through, over that file; remove the link")
        if path.exists() and not path.is_file():
            raise UsageError(f"{path} is not a file, and the table would be written there; remove it or pass "
                             f"another {'--runs' if path.parent == runs else '--docs'}")
        if path.is_file() and not written_here(path):  # a user's own notes, say, in the folder named
            raise UsageError(f"{path} is not a file this command wrote, and the "
                             f"{'picture' if path.suffix == '.png' else 'table'} would be written over it; "
                             f"move it away or pass another {'--runs' if path.parent == runs else '--docs'}")


def table_command(args, runs, docs_wanted):
    """The command that writes the table this one would have from the runs it has saved."""
    place = ["--runs", shell.not_a_flag(runs)] if args.runs or args.steps else []  # --no-train's default is runs/results
    docs = (["--write-docs"] if docs_wanted else []) + (["--docs", shell.not_a_flag(args.docs)] if args.docs else [])
    return shell.join(["python", "-m", "mlp_lm.results", "--no-train"] + place + docs)


def how_to_finish(args, name, only, runs, docs_wanted, saved):
    """What to run after the run `name` was stopped, having `saved` part of itself or not (None: the
    n-grams and mixtures after the runs) to end with the table this command would have written."""
    place = ["--runs", shell.not_a_flag(runs)] if args.runs or args.steps else []  # --no-train's default is runs/results
    # neither --only nor --no-train writes docs/ on its own: a command that would have, asks for it
    docs = (["--write-docs"] if docs_wanted else []) + (["--docs", shell.not_a_flag(args.docs)] if args.docs else [])
    results = ["python", "-m", "mlp_lm.results"]
    if name is None:
        return (f"results: stopped while counting the n-grams and mixing, with every run saved; to finish: "
                f"{table_command(args, runs, docs_wanted)}")
    names = [n for n in CONFIGS if n in only]
    rest = names[names.index(name) + 1:]
    out = runs / name
    then = (results + ["--only", ",".join(rest)] + (["--steps", str(args.steps)] if args.steps else [])
            if rest else results + ["--no-train"]) + place + docs  # the runs after this one, or the table
    if saved and complete(out):  # it finished before the signal reached it: only the rest is to do
        return f"results: stopped after the run {name} was complete; to finish: {shell.join(then)}"
    if saved:  # saved unfinished where the table reads it: resume it there
        return (f"results: stopped in the run {name}, saved unfinished in {shell.shown(out)}; to finish: "
                f"{resume_command(out)}, then {shell.join(then)}")
    again = results + ["--only", ",".join([name] + rest)] + (["--steps", str(args.steps)] if args.steps else [])
    return (f"results: stopped before the run {name} saved anything; to finish: "
            f"{shell.join(again + place + docs)}")


if __name__ == "__main__":
    run(main, "python -m mlp_lm.results", needs_stdout=False)
