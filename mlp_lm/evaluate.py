"""Evaluate a trained model, alone or mixed with a Kneser-Ney n-gram (the paper mixed its network with a trigram).

    python -m mlp_lm.evaluate --checkpoint runs/names/model.npz
    python -m mlp_lm.evaluate --checkpoint runs/names/model.npz --mix-ngram 6
    python -m mlp_lm.evaluate --checkpoint runs/names/model.npz --data other_names.txt

Prints the mean NLL (nats), perplexity and bits per character on the train,
dev and test splits of the data the model was trained on. With --data naming
another file (same symbols), every item of that file is evaluated as one set.
With --mix-ngram N, the N-gram is fitted on the same training split, each
mixture's weight is chosen on dev, and test is reported with that weight.
"""
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.evaluate", file=sys.stderr)
    sys.exit(2)

from . import checkpoint, evaltime, metrics, mixture, model, shell
from .data_advice import data_warnings, long_items_warnings
from .cli import ArgumentParser, UsageError, run
from .flags import int_at_least
from .data import BOUNDARY, SPLIT_SEED, build_dataset, load_splits, show_symbols
from .jsonout import prepare_json, write_json
from .runtime import NotEnoughMemory
from .sampling import Novelty
from .wordfile import (DataError, NotAWordList, differs, read_items_and_digest, read_otherwise, refused_hint,
                       slow_reading)

MAX_ORDER = 32
FEW_DEV = 100  # dev examples below which one mixture weight chosen on them is mostly noise (a 6-item list: 5)
AS_A_WHOLE = ("pass a copy of the very file it was trained on with --data to rebuild the split, or any other file "
              "to evaluate on all of it")


def training_splits(config, vocab, block_size, path=None, instead=AS_A_WHOLE):
    """The checkpoint's own train/dev/test split, rebuilt from the data file it records (or from
    `path`, a file with the very same bytes, e.g. a copy of one that has moved since).
    instead: what the user can do when the split cannot be rebuilt (the end of the message)."""
    path = path or config.get("data")
    if not isinstance(path, str) or not path:
        raise UsageError(f"the checkpoint does not record its training data; {instead}")
    recorded = config.get("data_sha256")
    try:
        splits = load_splits(path, block_size, config.get("split_seed", SPLIT_SEED))
    except DataError as e:
        if not Path(path).exists():
            raise UsageError(f"the training data {path} is not there any more, so its split cannot be rebuilt; "
                             f"{instead}") from None
        hint = refused_hint(path, recorded, "model") if isinstance(e, NotAWordList) else None
        if hint:  # the very file, which an earlier version read: a model was trained on it
            instead = hint + ("; or pass --data with another file to evaluate on all of it" if instead == AS_A_WHOLE
                              else "; or leave out --mix-ngram")
        if hint or not differs(path, recorded):
            raise UsageError(f"cannot rebuild the training split from {path}: {e}; {instead}") from None
        splits = None  # it changed, into something that cannot be split: that it changed is the news
    if recorded and (splits is None or splits.sha256 != recorded):
        raise UsageError(f"the training data {path} has changed since training, so its split is not the one "
                         f"the model saw; {instead}")
    if splits.vocab.itos != vocab.itos:
        raise UsageError(f"the vocabulary of {path} is not the checkpoint's; " + (
            read_otherwise(vocab.itos, splits.vocab.itos) or "the file is the one it was trained on, so the checkpoint "
            "is damaged; train it again" if config.get("data_sha256") else "the file has changed since training"))
    return splits


def other_file(path, items, vocab, block_size):
    """Every item of another file (read from `path`), as one set of examples under the checkpoint's vocabulary."""
    for i, item in enumerate(items):  # a check per item, with its line for the message
        if BOUNDARY in item:
            raise DataError(f"{path}: item {i + 1} ({item!r}) contains the boundary symbol {BOUNDARY!r}, "
                            f"which marks the start and end of every item; remove it from the file")
    unknown = sorted(set("".join(items)) - set(vocab.itos))
    if unknown:
        raise DataError(f"{path} has symbol(s) {show_symbols(''.join(unknown))} that the model never saw "
                        f"(its vocabulary is {show_symbols(vocab.itos[1:])}); "
                        + (same_text_otherwise(items, vocab) or "remove them or train on this file"))
    try:
        return build_dataset(items, vocab, block_size)
    except NotEnoughMemory:  # build_dataset's own estimate, which names the sizes
        raise
    except MemoryError:  # past that estimate (a memory cap, say): the file is what is too large, not any flag
        raise DataError(f"the examples of {path} ({len(items):,} item{'' if len(items) == 1 else 's'}, a context "
                        f"of {block_size:,}) do not fit in the memory this process may use; evaluate on a shorter "
                        f"list, or give it more memory (free some, or raise ulimit -v)") from None


def trained_on(items, config):
    """How many of another file's items the model trained on: a loss on its own training items
    is no measure of how it does on new ones (a file re-saved by an editor is no longer the
    training data byte for byte, and is evaluated as another file). The training items are
    sampling.Novelty's, which tells samples that are new the same way."""
    training = Novelty(config)
    if training.why is not None:
        return f"which of its items the model trained on cannot be told ({training.why})"
    seen = sum(item in training.train for item in items)
    one = len(items) == 1
    return (f"{seen:,} of its {len(items):,} item{'' if one else 's'} {'is' if seen == 1 or one else 'are'} in the "
            f"model's training split")


def same_text_otherwise(items, vocab):
    """What would make every symbol of `items` one the model knows, when that is only a matter of how
    the text is written (an accent as one character or two, or the case), else None."""
    text, known = "".join(items), set(vocab.itos)
    form = vocab.form_of(text)  # é as one character, or e and a combining accent: the same on screen
    if form:
        return (f"the file writes its accents another way than the model's training data: normalise it to "
                f"Unicode {form} (unicodedata.normalize(\"{form}\", line)) and evaluate that")
    for case, how in ((str.lower, "lower"), (str.upper, "upper")):  # for a model whose letters are all of one case
        if set(case(text)) <= known and all(case(c) == c for c in vocab.itos):
            return f"the model's symbols are {how}-case: {how}-case the file and evaluate that"
    return None


def parse_args(argv):
    ap = ArgumentParser(prog="python -m mlp_lm.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", metavar="PATH", required=True, help="a model.npz written by python -m mlp_lm.train")
    ap.add_argument("--data", metavar="PATH", default=None,
                    help="evaluate on every item of this file (default: the split the model was trained on, "
                         "which a byte-identical copy of its training data also gives)")
    order = int_at_least(1, f"an n-gram order from 1 to {MAX_ORDER}", MAX_ORDER)
    ap.add_argument("--mix-ngram", metavar="N", type=order,
                    default=None, help="also the Kneser-Ney N-gram and its mixtures with the model (the paper's is N=3)")
    ap.add_argument("--json", metavar="PATH", default=None, help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.json is not None:
        prepare_json(args.json)  # before the work, not after it
    params, vocab, config = checkpoint.load(args.checkpoint)
    T = config["block_size"]
    n = args.mix_ngram
    block = max(T, (n or 1) - 1)  # contexts wide enough for both models; each reads its last columns
    sets = {}  # name -> (X, Y)
    read = (args.data, config.get("data") if args.data is None or n is not None else None)  # the training data: its
    for path in dict.fromkeys(p for p in read if isinstance(p, str)):  # split, or --mix-ngram's n-gram and weights
        if notice := slow_reading(path):  # the data line comes only once every file is read
            print(notice, file=sys.stderr, flush=True)
    try:
        items, sha256 = read_items_and_digest(args.data) if args.data is not None else (None, None)
    except NotAWordList as e:  # a copy of the training file, which an earlier version read?
        hint = refused_hint(args.data, config.get("data_sha256"), "model")
        if hint:
            raise UsageError(f"{e}; {hint}") from None
        raise
    needs_split = ("--mix-ngram fits its n-gram and weights on the training split: put the file back (or pass "
                   "a copy with --data), or leave out --mix-ngram") if args.data is None or sha256 == config.get(
        "data_sha256") else (f"--mix-ngram fits its n-gram and weights on the model's training split, of "
                             f"{config.get('data')}: put that file back there, or leave out --mix-ngram")
    if args.data is None or sha256 == config.get("data_sha256"):  # the training data itself: its split
        splits = training_splits(config, vocab, block, args.data,  # a byte-identical copy will do
                                 instead=needs_split if n is not None else AS_A_WHOLE)
        sets.update(train=splits.train, dev=splits.dev, test=splits.test)
        source = args.data or config["data"]
    else:
        X, Y = other_file(args.data, items, vocab, block)
        sets["all"] = (X, Y)
        source = args.data
        if n is not None:  # the n-gram and the mixtures' weights still come from the training data
            splits = training_splits(config, vocab, block, instead=needs_split)
            sets.update(dev=splits.dev)
    print(f"checkpoint: {shell.shown(args.checkpoint)}: T={T} E={params['C'].shape[1]} H={params['b1'].shape[0]}"
          f"{' direct' if 'Wd' in params else ''}, {model.num_params(params):,} parameters")
    if "all" in sets:  # another file: all of it, and perhaps the training data's dev split for the mixture
        shown = f"{len(sets['all'][1])} examples from every item" + (
            f" (and the training data's {len(sets['dev'][1])} dev examples, for the mixture's weight)" if "dev" in sets else "")
        shown += "; " + trained_on(items, config)
    else:
        shown = ", ".join(f"{len(Y)} {name}" for name, (_, Y) in sets.items()) + " examples"
    print(f"data: {shell.shown(source)}: {shown}")
    if "all" not in sets:  # the training split: what train warned of about the list holds for these numbers too
        for warning in data_warnings(splits):
            print(warning, file=sys.stderr)
    else:  # another file: one long item can be most of its loss (a line of 200,000 symbols among 500 names: 98%)
        for warning in long_items_warnings(None, [items], [shell.shown(args.data)]):
            print(warning, file=sys.stderr)
    if n is not None and len(sets["dev"][1]) < FEW_DEV:
        print(f"warning: the mixtures' weights are chosen on only {len(sets['dev'][1])} dev examples, too few to "
              f"choose them well, so the mixtures' losses say little (and on dev flatter them)", file=sys.stderr)

    examples = sum(len(Y) for _, Y in sets.values())
    estimate = evaltime.evaluation_seconds(params, examples)
    if notice := evaltime.slow_evaluation(examples, estimate):
        # the mixtures took 5 to 8 times the MLP's evaluation on long lists (a new user's 3,001 symbols: 5.5 or more)
        print(notice + (", then the mixtures, which can take 5 to 8 times as long" if n is not None else ""),
              file=sys.stderr, flush=True)
    # past SLOW_SECONDS, each part of the mixtures is told as it begins
    slow_mix = n is not None and 5 * estimate >= evaltime.SLOW_SECONDS
    say = (lambda line: print(f"  {line} ...", file=sys.stderr, flush=True)) if slow_mix else None
    t0 = time.perf_counter()
    try:
        result = mixture.evaluate(params, sets, splits.train if n else None, n, say=say)
    except FloatingPointError as e:  # from the model's arithmetic (model.logits): the numbers would be junk
        raise checkpoint.overflowed(args.checkpoint, e) from None
    except MemoryError:  # evaluate has no sizes to make smaller: the n-gram's order and the data are what grow
        raise NotEnoughMemory("not enough memory to evaluate " + (f"and mix a {n}-gram over " if n else "") +
                              f"{examples:,} examples; " + ("use a smaller --mix-ngram, or " if n else "") +
                              "evaluate on a shorter list (--data)") from None
    rows = [("mlp", result["mlp"])]
    if n is not None:
        lam, lam_ll = result["lambda"], result["lambda_loglinear"]
        rows += [(f"kn {n}-gram", result["ngram"]), (f"linear mix, lambda {lam:.3f}", result["mix"]),
                 (f"log-linear mix, lambda {lam_ll:.3f}", result["mix_loglinear"])]
    seconds = time.perf_counter() - t0

    shown = [name for name in ("train", "dev", "test", "all") if name in sets and not (name == "dev" and "all" in sets)]
    width = max(len(r[0]) for r in rows)
    column = max(7, *(len(f"{losses[name + '_loss']:.4f}") for _, losses in rows for name in shown))  # a wild model's
    print(f"{'':{width}}  " + "  ".join(f"{name:>{column}}" for name in shown) + "   (mean NLL, nats)")
    for label, losses in rows:
        print(f"{label:{width}}  " + "  ".join(f"{losses[name + '_loss']:{column}.4f}" for name in shown))
    main_set = "all" if "all" in sets else "test"
    for label, losses in rows:
        print(f"{main_set} {label}: {metrics.describe(losses[main_set + '_loss'])}")
    if n is not None:
        print(f"lambda is the MLP's weight, chosen on dev ({len(sets['dev'][1])} examples); evaluated in {seconds:.1f}s")
    for losses in result.values():
        if isinstance(losses, dict):
            metrics.add_measures(losses)
    if args.json is not None:
        order = {} if n is None else {"mix_ngram": n}  # the n-gram's order, as --mix-ngram gave it
        # the dev numbers of another file's evaluation are of the training data's dev split, the weights' (say so)
        weights = {"dev_of": config["data"]} if "all" in sets and "dev" in sets else {}
        write_json(args.json, {"checkpoint": str(args.checkpoint), "data": source, **order, **weights, **result})
    return 0


if __name__ == "__main__":
    run(main, "python -m mlp_lm.evaluate")
