"""Train the configurations in the docs' results table, fit the n-grams, mix, and write the table.

    python -m mlp_lm.results                 # every run (about 18 minutes on 2 cores, 13 of them the
                                             # best preset), then
                                             # docs/results.md and docs/embedding.png
    python -m mlp_lm.results --only best     # retrain only these runs; the rest from their metrics.json
    python -m mlp_lm.results --no-train      # only rebuild the table from runs/results/*/metrics.json
    python -m mlp_lm.results --steps 2000    # a quick look: its table goes to runs/results-quick/results.md

Every number in docs/results.md comes from a run's metrics.json or from the
counting and mixture code, never from a hand-typed table. Only a full run (or
--write-docs) writes into docs/.
"""
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import checkpoint, metrics, mixture
from .cli import ArgumentParser, UsageError, exit_code, positive_int, run
from .counting import KneserNey, choose_k
from .data import in_checkout, load_splits

# name -> (what it shows, train flags). The order is the table's.
CONFIGS = {
    "lecture": ("part 2 as in the lecture: plain normal init", ["--init", "lecture"]),
    "scaled": ("the default: the part 3 init fix", []),
    "bigram-context": ("one character of context (T=1), as the bigram sees", ["--block-size", "1"]),
    "embd2": ("2-D embeddings, for the picture", ["--n-embd", "2", "--n-hidden", "100"]),
    "wider": ("more context and bigger embeddings", ["--block-size", "4", "--n-embd", "16", "--n-hidden", "300"]),
    "direct": ("the paper's direct connections", ["--direct"]),
    "decay": ("the paper's weight decay", ["--weight-decay", "1e-4"]),
    "paper": ("direct connections, weight decay and the paper's 1/(1 + r t) schedule",
              ["--direct", "--weight-decay", "1e-4", "--schedule", "inverse", "--decay-rate", "4.5e-5"]),
    "best": ("the strongest recipe we found (docs/best.md)", ["--preset", "best"]),
}
PICTURE_RUN = "embd2"
MIXED = ("scaled", "paper", "best")  # runs mixed with the n-gram below
MIX_ORDER = 6  # the n-gram they are mixed with: Kneser-Ney's best order on names
NGRAM_ORDERS = range(2, 9)


def train_run(flags):
    """Run `python -m mlp_lm.train flags` as a user would, and return its exit code.

    A Ctrl-C or SIGTERM that reaches this process is passed on to the training, which
    saves what it has and exits 130 or 143; we wait for that rather than cut it short.
    """
    proc = subprocess.Popen([sys.executable, "-m", "mlp_lm.train", *flags])
    try:
        return proc.wait()
    except KeyboardInterrupt as e:  # cli.Interrupted
        proc.send_signal(signal.SIGTERM if exit_code(e) == 128 + signal.SIGTERM else signal.SIGINT)
        return proc.wait()


def read_metrics(path):
    """A finished, evaluated run's metrics.json, or a one-line error saying why it is not one."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO (or a link to one) would block the read forever
            raise UsageError(f"{path} is not a regular file; retrain that run")
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} is missing: train it first (run without --no-train)") from None
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); retrain that run") from None
    numbers = ("dev_loss", "test_loss", "train_loss", "train_seconds")
    missing = [k for k in ("config", *numbers, "params") if not isinstance(m, dict) or k not in m]
    if missing:
        raise UsageError(f"{path} is not a finished, evaluated run (no {', '.join(missing)}); retrain that run")
    config_keys = ("block_size", "n_embd", "n_hidden")
    wrong = [k for k in numbers if not _is_number(m[k])] + [k for k in ("params",) if not _is_whole(m[k])]
    if not isinstance(m["config"], dict) or any(not _is_whole(m["config"].get(k)) for k in config_keys) \
            or not isinstance(m["config"].get("data"), str):
        wrong.append("config")
    if wrong:
        raise UsageError(f"{path} has {', '.join(wrong)} of the wrong type; retrain that run")
    return m


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_whole(v):
    return isinstance(v, int) and not isinstance(v, bool)


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
    splits = load_splits(config["data"], max(config["block_size"], n - 1), config["split_seed"])
    sets = {"dev": splits.dev, "test": splits.test}
    return mixture.evaluate(params, sets, splits.train, n)


def loss_cells(m):
    dev = m["dev_loss"]
    return (f"{m.get('train_loss', float('nan')):.4f} | {dev:.4f} | {m['test_loss']:.4f} | "
            f"{metrics.perplexity(dev):.2f} | {metrics.bits_per_char(dev):.3f}")


def render(rows, ngrams, mixes, machine, steps=None):
    """The Markdown tables: MLP runs [(name, what, metrics)], n-grams, mixtures {name: result}."""
    budget = (f"{steps:,} steps each (a quick look, not the documented results)" if steps else
              "200,000 steps of batch 32, lr 0.1 then 0.01, seed 42, float32, unless the flags say otherwise")
    out = [
        "# Results",
        "",
        "<!-- generated by `python -m mlp_lm.results`; edit that, not this file -->",
        "",
        "Mean negative log likelihood (nats) on the lecture's split of `data/names.txt`, "
        f"each run `python -m mlp_lm.train` with the flags shown and the defaults otherwise ({budget}). "
        "Lower is better; ln 27 = 3.296 is a uniform guess. Perplexity and bits per character are of the dev loss.",
        "",
        "| run | what it shows | flags | T | E | H | params | train | dev | test | dev perplexity | dev bits/char | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, what, m in rows:
        c = m["config"]
        flags = " ".join(CONFIGS[name][1]) if name in CONFIGS else ""
        flags = f"`{flags}`" if flags else "(defaults)"
        out.append(f"| {name} | {what} | {flags} | {c['block_size']} | {c['n_embd']} | {c['n_hidden']} | "
                   f"{m['params']:,} | {loss_cells(m)} | {m['train_seconds']:.1f} |")
    out += ["", f"Seconds are the training loop alone, on {machine}.", ""]
    if ngrams:
        out += ["## Counting: n-gram models", "",
                "The same examples, counted (`python -m mlp_lm.ngram --n N --smoothing kn|add-k`). "
                "Add-k's k is chosen on dev from a grid; Kneser-Ney is interpolated modified Kneser-Ney "
                "(Chen & Goodman 1998) down to a uniform distribution.", "",
                "| model | n | k | train | dev | test | dev perplexity | dev bits/char |",
                "|---|---|---|---|---|---|---|---|"]
        for (smoothing, n), m in sorted(ngrams.items(), key=lambda kv: (kv[0][0] != "add-k", kv[0][1])):
            k = f"{m['k']:.3g}" if "k" in m else ""
            out.append(f"| {smoothing} | {n} | {k} | {loss_cells(m)} |")
        out.append("")
    if mixes:
        out += [f"## Mixtures with the Kneser-Ney {MIX_ORDER}-gram", "",
                "As in the paper (`python -m mlp_lm.evaluate --mix-ngram 6`): lambda, the MLP's weight, is "
                "chosen on dev and the mixture is then evaluated on test. Linear: lambda p_mlp + (1 - lambda) "
                "p_ngram; log-linear: p_mlp^lambda p_ngram^(1 - lambda), renormalised.", "",
                "| run | MLP dev | MLP test | n-gram dev | n-gram test | linear lambda | linear dev | linear test "
                "| log-linear lambda | log-linear dev | log-linear test |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in mixes.items():
            out.append(f"| {name} | {r['mlp']['dev_loss']:.4f} | {r['mlp']['test_loss']:.4f} | "
                       f"{r['ngram']['dev_loss']:.4f} | {r['ngram']['test_loss']:.4f} | {r['lambda']:.3f} | "
                       f"{r['mix']['dev_loss']:.4f} | {r['mix']['test_loss']:.4f} | {r['lambda_loglinear']:.3f} | "
                       f"{r['mix_loglinear']['dev_loss']:.4f} | {r['mix_loglinear']['test_loss']:.4f} |")
        out.append("")
    return "\n".join(out)


def main(argv=None):
    ap = ArgumentParser(prog="python -m mlp_lm.results", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", metavar="DIR", default=None,
                    help="where the runs go (default runs/results, or runs/results-quick with --steps)")
    ap.add_argument("--docs", metavar="DIR", default=str(in_checkout("docs")),
                    help="where a full run writes results.md (default the checkout's docs/)")
    ap.add_argument("--no-train", action="store_true", help="only rebuild the table from existing runs")
    ap.add_argument("--only", metavar="NAMES", default=None,
                    help=f"comma-separated runs to retrain ({', '.join(CONFIGS)}); the others are read back")
    ap.add_argument("--steps", metavar="N", type=positive_int, default=None,
                    help="override the steps of every run (a quick look: the table goes to --runs, not docs)")
    ap.add_argument("--write-docs", action="store_true", help="write docs/ even with --steps or --only")
    args = ap.parse_args(argv)
    only = set(CONFIGS) if args.only is None else set(args.only.split(","))
    if only - set(CONFIGS):
        raise UsageError(f"--only: no run named {', '.join(sorted(only - set(CONFIGS)))}; the runs are "
                         f"{', '.join(CONFIGS)}")
    runs = Path(args.runs or in_checkout("runs/results-quick" if args.steps else "runs/results"))
    to_docs = args.write_docs or (args.steps is None and args.only is None and not args.no_train)
    target = Path(args.docs) if to_docs else runs
    rows = []
    for name, (what, flags) in CONFIGS.items():
        out = runs / name
        if not args.no_train and name in only:
            extra = ["--steps", str(args.steps)] if args.steps else []
            print(f"== {name}: python -m mlp_lm.train {' '.join(flags + extra)}", flush=True)
            started = time.time()
            code = train_run(flags + extra + ["--out", str(out), "--force"])
            if code in (130, 143):  # Ctrl-C or SIGTERM: stop here, as the training did
                return code
            if code != 0:
                raise UsageError(f"the run {name} did not finish (exit code {code})")
            if not (out / "metrics.json").is_file() or (out / "metrics.json").stat().st_mtime < started:
                raise UsageError(f"the run {name} wrote no new {out / 'metrics.json'} (a run that got nowhere "
                                 f"is saved in {out / 'unconverged'}): the table would show stale numbers")
        rows.append((name, what, read_metrics(out / "metrics.json")))
    data = rows[0][2]["config"]["data"]
    t0 = time.perf_counter()
    ngrams = ngram_rows(data)
    mixes = {name: mixture_row(runs / name) for name in MIXED}
    print(f"n-grams and mixtures in {time.perf_counter() - t0:.1f}s")
    machine = (f"a {os.cpu_count()}-core {platform.machine()} {platform.system()} machine, "
               f"Python {platform.python_version()}, numpy {np.__version__}")
    tables = json.dumps({"ngrams": {f"{s}-{n}": m for (s, n), m in ngrams.items()}, "mixtures": mixes}, indent=2)
    try:
        target.mkdir(parents=True, exist_ok=True)
        (target / "results.md").write_text(render(rows, ngrams, mixes, machine, args.steps))
        (runs / "tables.json").write_text(tables + "\n")
    except OSError as e:
        raise UsageError(f"cannot write the table: {e.strerror or e} ({e.filename}); pass writable --docs and --runs") from None
    print(f"wrote {target / 'results.md'}")
    picture = runs / PICTURE_RUN / "embedding.png"
    if not to_docs:
        print("(a quick or partial run: docs/ left as it was; --write-docs to overwrite it)")
    elif picture.is_file():
        shutil.copyfile(picture, target / "embedding.png")
        print(f"wrote {target / 'embedding.png'} (from the {PICTURE_RUN} run)")
    else:
        print(f"no {picture} (matplotlib missing?): docs/embedding.png left as it was")
    return 0


if __name__ == "__main__":
    run(main, "python -m mlp_lm.results")
