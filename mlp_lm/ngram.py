"""Fit a count-based n-gram model on the MLP's training split, evaluate it, and sample from it.

    python -m mlp_lm.ngram --n 6 --smoothing kn       # interpolated modified Kneser-Ney
    python -m mlp_lm.ngram --n 3 --smoothing add-k    # add-k, with k chosen on dev
    python -m mlp_lm.ngram --n 8 --smoothing kn --json runs/kn8.json

The split, the vocabulary and the examples are the MLP's (data.load_splits with
block_size n - 1), so the losses are directly comparable with the ones train
prints. n = 1 is the unigram model: it is counted from the same examples with
their context ignored. The models are in counting.py.
"""
import argparse
import sys
import time

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.ngram", file=sys.stderr)
    sys.exit(2)

from . import metrics
from .data_advice import data_warnings
from .cli import ArgumentParser, UsageError, run
from .flags import int_at_least, non_negative_int
from .counting import K_GRID, KneserNey, choose_k
from .data import describe, load_splits
from .jsonout import prepare_json, write_json
from .runtime import NotEnoughMemory
from .sampling import MAX_LENGTH, SAMPLE_LENGTH, Novelty, generate, one_line, sample_length
from .wordfile import DEFAULT_DATA, in_checkout, slow_reading

MAX_N = 32  # far past where names' losses stop changing; keeps the examples (N, n-1) small


def order(text):
    """An argparse type: the order n, a whole number from 1 to MAX_N."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_N:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_N}, got {text!r}")
    return value


MAX_SAMPLES = 100_000  # they are printed on one line and counted against the data: a bound keeps that small
MAX_SAMPLE_SYMBOLS = MAX_SAMPLES * SAMPLE_LENGTH  # and on their symbols, as samples of a long list grow longer


def parse_args(argv):
    ap = ArgumentParser(prog="python -m mlp_lm.ngram", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", metavar="N", type=order, required=True,
                    help=f"the order: each symbol is predicted from the N - 1 before it (1 to {MAX_N})")
    ap.add_argument("--smoothing", choices=("kn", "add-k"), required=True,
                    help="kn: interpolated modified Kneser-Ney; add-k: add k to every count, k chosen on dev")
    ap.add_argument("--data", metavar="PATH", default=str(in_checkout(DEFAULT_DATA)),
                    help="a UTF-8 file with one item per line (default data/names.txt)")
    ap.add_argument("--json", metavar="PATH", default=None, help="also write the results to this JSON file")
    ap.add_argument("--samples", metavar="K", type=int_at_least(0, f"a number of samples from 0 to {MAX_SAMPLES:,}", MAX_SAMPLES),
                    default=10, help=f"how many samples to print on one line (default 10, at most {MAX_SAMPLES:,}; "
                                     f"python -m mlp_lm.sample streams any number from the network)")
    ap.add_argument("--seed", metavar="N", type=non_negative_int, default=42, help="random seed of the samples (default 42)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.json is not None:
        prepare_json(args.json)  # before the work, not after it
    n = args.n
    block_size = max(n - 1, 1)  # build_dataset needs a context; a unigram model ignores it
    if notice := slow_reading(args.data):
        print(notice, file=sys.stderr, flush=True)
    splits = load_splits(args.data, block_size)
    V = len(splits.vocab)
    counter = Novelty(split=splits.items)  # the samples' counts, and the longest item
    length = sample_length(counter.longest)  # a sample's most symbols
    if args.samples * length > MAX_SAMPLE_SYMBOLS:  # a review's 200 samples of 30 items of 50,000: 51 s, one 5 MB line
        raise UsageError(f"--samples {args.samples:,} of up to {length:,} symbols each (twice this list's longest item, "
                         f"at most {MAX_LENGTH:,}) "
                         f"could be {args.samples * length:,} symbols on one line; use at most "
                         f"{max(MAX_SAMPLE_SYMBOLS // length, 1):,} here")  # (sample streams, but a network's)
    print(describe(args.data, splits))
    for warning in data_warnings(splits):
        print(warning, file=sys.stderr)

    t0 = time.perf_counter()
    result = {"data": str(args.data), "vocab_size": V, "n": n, "smoothing": args.smoothing}
    try:
        if args.smoothing == "kn":
            model = KneserNey(n).fit(*splits.train, V)
        else:
            k, model = choose_k(*splits.train, *splits.dev, n, V)
            result["k"] = k
        for name in ("train", "dev", "test"):
            result[f"{name}_loss"] = model.nll(*getattr(splits, name))
    except MemoryError:  # its tables grow with the list and n; the generic message would ask for other sizes
        raise NotEnoughMemory(f"not enough memory to count the {n}-grams of {len(splits.train[1]):,} training "
                              f"examples; use a smaller --n or a shorter list") from None
    seconds = time.perf_counter() - t0
    metrics.add_measures(result)  # every line printed below, in the JSON too

    if args.smoothing == "kn":
        print(f"model: {n}-gram, interpolated modified Kneser-Ney; discounts D1 D2 D3+ by order:")
        result["discounts"] = []
        for k, (D, fell_back) in enumerate(zip(model.discounts, model.fallback), start=1):
            result["discounts"].append({"order": k, "D1": D[0], "D2": D[1], "D3+": D[2], "fallback": bool(fell_back)})
            note = "  (fallback: too few n-grams seen 1, 2 or 3 times to estimate them)" if fell_back else ""
            print(f"  order {k}: {D[0]:.3f} {D[1]:.3f} {D[2]:.3f}{note}")
    else:
        edge = ("; at an end of them, so a k beyond it may do better" if result["k"] in (min(K_GRID), max(K_GRID))
                else "")
        print(f"model: {n}-gram, add-k; k = {result['k']:.4g} (the lowest dev loss of {len(K_GRID)} values "
              f"from {min(K_GRID):g} to {max(K_GRID):g}{edge})")
    print(f"fitted and evaluated in {seconds:.2f}s")
    result["seconds"] = round(seconds, 3)
    for name in ("train", "dev", "test"):
        print(f"{name + ' loss':10s} {metrics.describe(result[name + '_loss'])}")

    samples, ended = generate(model.next_probs, splits.vocab, block_size, args.samples, np.random.default_rng(args.seed),
                              with_ended=True, max_length=length)
    result["samples"], result["samples_ended"] = samples, ended  # not ended: cut off at `length` symbols
    if samples:
        counter.add(samples, ended)
        print(f"samples ({counter.summary()}):", one_line(samples, ended))
        result.update(counter.fields())
    if args.json is not None:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    run(main, "python -m mlp_lm.ngram")
