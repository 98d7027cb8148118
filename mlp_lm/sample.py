"""Sample new items from a trained model.

    python -m mlp_lm.sample --checkpoint runs/names/model.npz -n 20 --seed 1

One sample per line on stdout; on stderr, how many samples are copies of the
training set, of dev/test, or new (makemore's check that the model is not
just memorising).
"""
import os
import signal
import sys
import unicodedata
from functools import partial

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.sample", file=sys.stderr)
    sys.exit(2)

from . import STOP_SIGNALS, checkpoint, latest, shell
from .cli import ArgumentParser, Interrupted, UsageError, run
from .flags import int_at_least, non_negative_float, non_negative_int, positive_int, thread_count
from .model import next_probs
from .sampling import CUT, MAX_LENGTH, SAMPLE_LENGTH, Novelty, generate_chunks, printable, sample_length, unprinted
from .runtime import blas_threads, choose_threads
from .wordfile import DataError, read_otherwise


def parse_args(argv):
    ap = ArgumentParser(prog="python -m mlp_lm.sample", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", metavar="PATH", default=None,
                    help="a model.npz written by python -m mlp_lm.train (default: the newest under runs/ in this "
                         "checkout, whatever the current directory, where train puts its runs)")
    ap.add_argument("-n", "--num-samples", metavar="N", type=positive_int, default=20, help="how many samples (default 20)")
    ap.add_argument("--seed", metavar="N", type=non_negative_int, default=0,
                    help="random seed (default 0); the same seed and --max-length give the same lines (each sample "
                         "draws its numbers in a block of --max-length), another seed others")
    ap.add_argument("--temperature", metavar="T", type=non_negative_float, default=None,
                    help="divide the logits by this (default 1): below 1 is more conservative, above 1 more "
                         "adventurous, 0 always takes the likeliest symbol (greedy)")
    ap.add_argument("--top-k", metavar="K", type=positive_int, default=None, help="sample only from the k most likely symbols")
    ap.add_argument("--prefix", metavar="TEXT", default="", help="start every sample with these characters")
    ap.add_argument("--max-length", metavar="N", default=None,
                    type=int_at_least(1, f"a length from 1 to {MAX_LENGTH:,}", MAX_LENGTH),
                    help=f"stop a sample after this many symbols (default {SAMPLE_LENGTH}, or twice the longest item "
                         f"of the model's training data where that is more; at most {MAX_LENGTH:,})")
    ap.add_argument("--threads", metavar="N", type=thread_count, default=None,
                    help="BLAS threads for the matrix products (default: chosen by the model's size; at most the machine's cores)")
    args = ap.parse_args(argv)
    check_what_applies(args)
    if args.temperature is None:
        args.temperature = 1.0
    if any("\udc80" <= ch <= "\udcff" for ch in args.prefix):  # how Python keeps argv bytes it could not decode
        encoding = sys.getfilesystemencoding()
        advice = ("type it as UTF-8 text" if encoding.lower().replace("-", "") == "utf8"
                  else "run in a UTF-8 locale, or with PYTHONUTF8=1")
        raise UsageError(f"--prefix {args.prefix!r} holds bytes that are not text in this locale's encoding "
                         f"({encoding}); {advice}")
    # before any work, at its shortest (as typed, or its accents composed); main checks it as the model writes it
    if args.max_length is not None:  # the default comes from the training data, once the model is loaded
        check_prefix_length(min(args.prefix, unicodedata.normalize("NFC", args.prefix), key=len), args.max_length)
    return args


def check_what_applies(args):
    """A flag the sampling would ignore is a mistake, not a no-op (as train's): --top-k and --seed choose among
    symbols, which greedy sampling never does, and --temperature reshapes a choice --top-k 1 leaves no room for."""
    greedy = ("--temperature 0" if args.temperature == 0 else "--top-k 1" if args.top_k == 1 else None)
    ignored = [flag for flag, given in (("--top-k", args.top_k is not None and args.temperature == 0),
                                        ("--temperature", args.top_k == 1 and args.temperature not in (None, 0, 1)),
                                        ("--seed", greedy and args.seed != 0)) if given]
    if ignored:
        raise UsageError(f"{ignored[0]} has no effect with {greedy}, which always takes the likeliest symbol (every "
                         f"sample is the same); leave {ignored[0]} out, or sample with "
                         + ("a --temperature above 0" if greedy == "--temperature 0" else "a larger --top-k"))


def check_prefix_length(prefix, max_length):
    if len(prefix) >= max_length:  # every sample would be the prefix, cut off: the model draws nothing
        raise UsageError(f"--prefix has {len(prefix)} symbols, leaving none of --max-length {max_length} "
                         f"for the model to draw; raise --max-length or shorten the prefix")


def main(argv=None):
    args = parse_args(argv)
    newest = args.checkpoint is None
    if newest:
        args.checkpoint = latest.newest_model("--checkpoint PATH")
    params, vocab, config = checkpoint.load(args.checkpoint)
    if newest:  # said once it loads, so a damaged newest model is one line, the error
        unfinished = latest.unfinished(args.checkpoint, config)
        kept = (f": what was kept of a run that diverged after step {config['diverged_at']}"
                if config.get("diverged_at") is not None else f": {unfinished}" if unfinished else "")
        print(f"(sampling from {shell.shown(args.checkpoint)}, the newest model{kept})", file=sys.stderr)
    if not set(args.prefix) <= set(vocab.itos):  # an accent typed as one character where the model has two, or
        form = vocab.form_of(args.prefix)  # the reverse: the same text on screen, written the model's way
        if form:
            args.prefix = unicodedata.normalize(form, args.prefix)
            print(f"(--prefix written the way the model's symbols are: its accents "
                  f"{'composed' if form == 'NFC' else 'decomposed'}, Unicode {form})", file=sys.stderr)
    # A sample copied as printed, its tab written \t: said how to pass the tab itself, in a note where this model
    # takes the prefix as written (its symbols include a backslash), else with the refusal below
    meant, symbols = unprinted(args.prefix), set(vocab.itos[1:])  # (itos[0] is the boundary, which no prefix may hold)
    as_escaped = (f"the samples print a tab or another control as an escape: --prefix={shell.quote(meant)} passes the "
                  f"characters themselves" if meant != args.prefix and set(meant) <= symbols else None)
    if as_escaped and set(args.prefix) <= symbols:
        print(f"(--prefix {shell.quote(args.prefix)} is taken as written, its backslashes too; {as_escaped})",
              file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    H, V = params["W2"].shape  # (H, V): the hidden layer's width, the vocabulary
    if args.top_k is not None and args.top_k >= V:  # no mistake: a script may give one --top-k to many models
        print(f"(--top-k {args.top_k} keeps all {V} of this model's symbols: the same as no --top-k)", file=sys.stderr)
    if (args.temperature == 0 or args.top_k == 1) and args.num_samples > 1:
        print(f"(greedy: each of the {args.num_samples} samples is the likeliest, so all are the same)",
              file=sys.stderr)
    n_threads = args.threads or choose_threads(args.num_samples, params["W1"].shape[0], H, V)
    counter, shown = Novelty(config), 0
    # as the checkpoint records it (one saved before it did: its data's, or 64 when that cannot be read)
    args.max_length = args.max_length or sample_length(config.get("longest_item", counter.longest))
    check_prefix_length(args.prefix, args.max_length)  # in the model's symbols
    if counter.symbols not in (None, vocab.itos) and not read_otherwise(vocab.itos, counter.symbols):
        raise checkpoint.CheckpointError(f"{args.checkpoint}: its vocabulary is not that of {config['data']}, the very "
                                         f"file it was trained on, so the checkpoint is damaged; retrain")
    chunks = generate_chunks(partial(next_probs, params), vocab, config["block_size"], args.num_samples, rng,
                             temperature=args.temperature, top_k=args.top_k, prefix=args.prefix,
                             max_length=args.max_length)
    with blas_threads(n_threads):
        while True:  # a chunk of samples at a time, printed as it comes: memory stays bounded for any -n
            try:
                samples, ended = next(chunks, (None, None))
            except DataError as e:  # the only user input generation checks is the prefix
                raise UsageError(f"--prefix {args.prefix!r}: {e}" + (f"; {as_escaped}" if as_escaped else "")) from None
            except FloatingPointError as e:  # from the model's arithmetic (model.logits): the samples would be junk
                raise checkpoint.overflowed(args.checkpoint, e) from None
            if samples is None:
                break
            write_lines([printable(s) + ("" if e else CUT) for s, e in zip(samples, ended)])  # a cut-off one is marked
            counter.add(samples, ended)
            shown += len(samples)
    sys.stdout.flush()
    print(f"({shown} sample{'s' * (shown != 1)}: {counter.summary(f'--max-length {args.max_length}')})", file=sys.stderr)
    return 0


def write_lines(lines):
    """The lines on stdout, never half of one: `sample | ...` stopped by a signal while the pipe is full
    (its reader slow) lost the rest of print()'s write, mid-name. Here each write says how much of it
    went out, and a stop signal is noted, not raised: the line it came in is finished, then the
    command stops as for any signal; a second signal ends it at once (the reader may never read)."""
    text = "\n".join(lines) + "\n"
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stdout with no file behind it (a notebook's, a test's)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    data, done, came = text.encode(sys.stdout.encoding, sys.stdout.errors or "strict"), 0, []

    def note(signum, frame):
        if came:
            os._exit(128 + signum)
        came.append(signum)
    previous = {s: signal.signal(s, note) for s in STOP_SIGNALS}
    try:
        end = len(data)
        while done < end:
            done += os.write(fd, data[done:end])  # all or part of it; a signal then is only noted
            if came and end == len(data):  # finish the line it came in, then stop
                end = data.find(b"\n", done - 1) + 1 if done else 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if came:
        raise Interrupted(came[0])


if __name__ == "__main__":
    run(main, "python -m mlp_lm.sample")
