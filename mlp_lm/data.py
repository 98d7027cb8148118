"""Words in, (context, next symbol) pairs out.

The items come from a word list file (wordfile.py). The vocabulary is the
boundary symbol "." at index 0 followed by the data's characters in sorted
order. Each item of length n gives n + 1 examples: the contexts are the
`block_size` previous symbols, padded with the boundary at the start, and the
targets run through the item and end with the boundary, as in the lecture:

    emma, block_size=3:  ... -> e,  ..e -> m,  .em -> m,  emm -> a,  mma -> .

Every problem with the data raises DataError with a message a person can act on.
"""
import operator
import random
import unicodedata
from dataclasses import dataclass

import numpy as np

from . import shell
from .checks import is_whole
from .runtime import NotEnoughMemory, check_fits
from .wordfile import (CHECKOUT, DEFAULT_DATA, DataError, digest, differs, in_checkout, read_items,
                       read_items_and_digest)

# The word list file's names, which this module held before wordfile.py: code that imports them from here
# still finds them.
__all__ = ["BOUNDARY", "SPLIT_SEED", "Vocab", "show_symbols", "build_vocab", "build_dataset", "split_items",
           "Splits", "describe", "REPEATS_WARN", "repeats_warning", "unseen_symbols", "unseen_symbols_warning",
           "load_splits",
           "CHECKOUT", "DEFAULT_DATA", "DataError", "digest", "differs", "in_checkout", "read_items",
           "read_items_and_digest"]

BOUNDARY = "."
SPLIT_SEED = 42  # the lecture's random.seed(42)



@dataclass(frozen=True)
class Vocab:
    """Symbols in index order, the boundary first. `stoi` maps symbol -> index."""

    itos: str

    def __post_init__(self):
        if not self.itos or self.itos[0] != BOUNDARY:
            raise DataError(f"a vocabulary must start with the boundary symbol {BOUNDARY!r}")
        if len(set(self.itos)) != len(self.itos):
            raise DataError("a vocabulary must not repeat a symbol")

    @property
    def stoi(self):
        return {s: i for i, s in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        """The indices of text's symbols: text is a str, or a list, tuple or 1-D array of one-symbol strs."""
        if isinstance(text, np.ndarray) and text.ndim == 1 and text.dtype.kind == "U":
            text = text.tolist()
        if not isinstance(text, str):  # a list of words would be read as unknown symbols, bytes as numbers
            if not isinstance(text, (list, tuple)):
                raise TypeError(_not_one_text(text))
            odd = [s for s in text if not (isinstance(s, str) and len(s) == 1)]
            if odd:
                raise TypeError(_not_one_symbol(odd[0]))
        stoi = self.stoi
        unknown = sorted(set(text) - set(stoi))
        if unknown:
            form = self.form_of(text) if isinstance(text, str) else None
            same = f" as {show_symbols(unicodedata.normalize(form, text))}" if form else ""
            raise DataError(f"unknown symbol(s) {show_symbols(''.join(unknown))}; the vocabulary is "
                            f"{show_symbols(self.itos[1:])}" + (
                                f" (the data writes accents the other way; the same text{same}, "
                                f"unicodedata.normalize({form!r}, text), would do)" if form else ""))
        return [stoi[s] for s in text]

    def form_of(self, text):
        """'NFD' or 'NFC': the Unicode form in which this vocabulary's symbols write the str `text` (the same
        text on screen, its accents as marks after their letters, or not), or None when neither does."""
        return next((f for f in ("NFD", "NFC") if set(unicodedata.normalize(f, text)) <= self.stoi.keys()), None)

    def decode(self, indices):
        V = len(self.itos)
        if any(not 0 <= i < V for i in indices):  # a str would read -1 as its last symbol
            raise ValueError(f"symbol indices must be in 0..{V - 1}")
        return "".join(self.itos[i] for i in indices)


def _not_one_text(text):
    """Vocab.encode's complaint about text that is neither a str nor a list of symbols, and what to pass."""
    if isinstance(text, (bytes, bytearray)):
        return f"encode takes a str, not {type(text).__name__}: decode it first, text.decode('utf-8')"
    return f"encode takes a str, or a list of one-symbol strs, not {'None' if text is None else type(text).__name__}"


def _not_one_symbol(item):
    """Vocab.encode's complaint about an item of a list that is not one symbol: a word, or a letter and its
    accent as two code points (shown escaped, a long one cut short), or not a str at all."""
    if isinstance(item, str):
        count = f" ({len(item)} symbols)" if len(item) <= 40 else ""  # show_symbols counts a longer one itself
        return (f"encode takes a str, or a list of one-symbol strs, not a list holding {show_symbols(item)}{count}; "
                f"one word at a time: encode(word)")
    return f"encode takes a str, or a list of one-symbol strs, not a list holding a value of type {type(item).__name__}"


def show_symbols(symbols, most=40):
    """Symbols quoted for a one-line message: the first and last `most` / 2 if there are more (sorted, the
    accented ones come last), and combining marks (a decomposed accent, U+0308) as escapes, since printed
    they would join the symbol before them and vanish from the list."""
    shown = repr(symbols if len(symbols) <= most else symbols[:most // 2]) + (  # repr escapes a BOM, a ZWJ
        "" if len(symbols) <= most else f"...{symbols[-(most // 2):]!r} ({len(symbols):,} in all)")
    return "".join((f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
                   if unicodedata.category(c) in ("Mn", "Me") else c for c in shown)


def build_vocab(items):
    """The boundary, then every character of the data in sorted order (27 symbols for names.txt)."""
    chars = set("".join(items))
    if "\n" in chars or "\r" in chars:  # read_items ends lines there: a checkpoint could not hold such a symbol
        raise DataError("an item holds a line break; items are lines of a file, one item per line")
    if BOUNDARY in chars:
        bad = next(i for i, item in enumerate(items) if BOUNDARY in item)
        raise DataError(
            f"the data contains the boundary symbol {BOUNDARY!r} (first in item {bad + 1}, blank lines not counted: "
            f"{items[bad]!r}); remove it from the data, it marks the start and end of every item"
        )
    return Vocab(BOUNDARY + "".join(sorted(chars)))


def dataset_bytes(n_examples, n_items, T):
    """An upper bound on the memory build_dataset holds at once for N examples of n items: the long
    array (8 bytes a position, N + n*T of them) beside the larger of its two stages, the symbols'
    code points, indices and places (24 bytes a symbol, fewer than N), and X, Y and the window starts
    (8*T + 16 bytes an example, or 16 while the starts are summed)."""
    return 8 * (n_examples * (T + 4) + n_items * T)


def build_dataset(items, vocab, block_size):
    """Contexts X (N, T) int64 and targets Y (N,) int64, N = sum(len(item) + 1).

    The same arrays as the lecture's loop over items and their symbols (docs/model.md runs both),
    built without a Python loop over examples: every item becomes T boundaries, its
    symbols and a closing boundary, laid end to end in one array, and each example is a
    window of T of it (the context) and the symbol after it (the target), starting at one of
    the item's first len(item) + 1 positions.
    """
    if not is_whole(block_size):
        raise ValueError(f"block_size must be a whole number, at least 1, got {block_size!r}")
    T = operator.index(block_size)  # a Python int: an np.int32 would overflow the memory estimate below
    if isinstance(items, str):  # its characters would be taken for one-letter items
        raise TypeError("items must be a list of strings, not one string")
    if isinstance(items, (set, frozenset)):  # their order, and so the examples', changes from run to run
        raise TypeError("items must be in a fixed order (a list), not a set")
    if len(items) == 0:
        return np.zeros((0, T), dtype=np.int64), np.zeros(0, dtype=np.int64)
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))  # (n,)
    # Symbols to indices all at once: code points, looked up in a table indexed by code point
    # (Unicode stops at 0x10FFFF, so the table is at most 4.4 MB), -1 for a symbol not in the vocabulary.
    codes = np.frombuffer("".join(items).encode("utf-32-le"), dtype=np.uint32)  # (sum L,)
    vocab_codes = np.array([ord(c) for c in vocab.itos], dtype=np.int64)
    lookup = np.full(max(vocab_codes.max(), codes.max(initial=0)) + 1, -1, dtype=np.int32)
    lookup[vocab_codes] = np.arange(len(vocab_codes))
    ids = lookup[codes]  # (sum L,)
    if (ids < 0).any():
        bad = int(np.argmax(ids < 0))
        item = int(np.searchsorted(np.cumsum(lengths), bad, side="right"))
        raise DataError(f"item {items[item]!r} has symbol {show_symbols(chr(codes[bad]))}, which is not in the "
                        f"vocabulary")
    if (ids == 0).any():  # index 0 is the boundary: inside an item it would end the item there
        item = int(np.searchsorted(np.cumsum(lengths), int(np.argmax(ids == 0)), side="right"))
        raise DataError(f"item {items[item]!r} contains the boundary symbol {BOUNDARY!r}, which marks the start and "
                        f"end of every item")
    n_examples = int(lengths.sum()) + len(items)
    check_fits(dataset_bytes(n_examples, len(items), T),
               f"building {n_examples:,} examples with a context of {T:,}", "use a smaller --block-size")
    span = lengths + T + 1  # each item's stretch of the long array
    start = np.cumsum(span) - span  # (n,) where each stretch begins
    seq = np.zeros(int(span.sum()), dtype=np.int64)  # boundaries everywhere ...
    before = np.cumsum(lengths) - lengths  # (n,) symbols of the items before each
    where = np.repeat(start + T - before, lengths)  # (sum L,) built in place, one temporary at a time
    where += np.arange(len(ids))
    seq[where] = ids  # ... but where the symbols go
    del where, ids, codes  # before the window starts: the peak is the larger of the two stages, not their sum
    n_ex = lengths + 1
    first = np.repeat(start - (np.cumsum(n_ex) - n_ex), n_ex)  # (N,) window starts
    first += np.arange(n_examples)
    X = np.lib.stride_tricks.sliding_window_view(seq, T)[first]  # (N, T): rows of a view, gathered in one copy
    first += T  # the target's position, in place
    return X, seq[first]


OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # line breaks to str.splitlines, not to a file's lines


def split_items(items, seed=SPLIT_SEED):
    """Shuffle with random.Random(seed) and cut 80% / 10% / 10%, as in the lecture."""
    if isinstance(items, (set, frozenset)):  # its order, and so the split, changes from run to run
        raise TypeError("items must be in a fixed order (a list), not a set")
    n = len(items)
    n1, n2 = int(0.8 * n), int(0.9 * n)
    if not 0 < n1 < n2 < n:  # true from n = 6 on
        # a list separated by what Unicode (and str.splitlines) calls a line break but a file's lines do not
        # end with, U+2028 say, reads as one long item (a hostile tester's)
        breaks = sorted({c for item in items if isinstance(item, str) for c in item if c in OTHER_BREAKS})
        raise DataError(
            f"the data has {n} item(s), too few for an 80/10/10 train/dev/test split with "
            f"every part non-empty; give it at least 6 items"
            + (f" (its items hold {', '.join(f'U+{ord(c):04X}' for c in breaks)}, which "
               f"{'does' if len(breaks) == 1 else 'do'} not end a line of a word file: only \\n, \\r\\n and \\r do)"
               if breaks else "")
        )
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:n1], items[n1:n2], items[n2:]


@dataclass
class Splits:
    vocab: Vocab
    train: tuple  # (X, Y)
    dev: tuple
    test: tuple
    items: tuple  # (train_items, dev_items, test_items)
    sha256: str  # of the data file as read


def describe(path, splits):
    """The one-line account of the data that train and ngram print first (a path with a line break, or bytes
    that are not UTF-8, written as the shell would read it: on one line, naming the very file)."""
    return (f"data: {shell.shown(path)}: {sum(len(p) for p in splits.items)} items, vocabulary of {len(splits.vocab)}, "
            f"{len(splits.train[1])}/{len(splits.dev[1])}/{len(splits.test[1])} train/dev/test examples")


REPEATS_WARN = 0.25  # a share of dev or test items also in train past which their losses say little


def repeats_warning(splits):
    """A warning when a file that repeats its items has put so many of dev's or test's in train too
    that their losses no longer measure unseen items (the split is by line, as in the lecture), else
    None. names.txt repeats 2,539 of its 32,033 names: 13% of dev's and 12% of test's are in train."""
    train = set(splits.items[0])
    seen = [sum(item in train for item in part) for part in splits.items[1:]]
    if max(n / len(part) for n, part in zip(seen, splits.items[1:])) <= REPEATS_WARN:
        return None
    return (f"warning: {seen[0]:,} of {len(splits.items[1]):,} dev items and {seen[1]:,} of {len(splits.items[2]):,} "
            f"test items are also in train (the file repeats items), so dev and test losses say little about "
            f"unseen ones; remove the repeats (sort -u) for held-out numbers")


def unseen_symbols(splits, parts=("dev", "test")):
    """The symbols that the items of `parts` (dev, test or both) hold and no training item does, sorted."""
    held = {"dev": splits.items[1], "test": splits.items[2]}
    return sorted(set("".join(item for part in parts for item in held[part])) - set("".join(splits.items[0])))


def unseen_symbols_warning(splits):
    """A warning when dev or test items hold symbols no training item holds, else None: a model never
    trained to predict them gives them little probability, which raises dev's and test's losses however
    well it learned the rest (a gap that reads like a model that learned its training items by heart)."""
    unseen = unseen_symbols(splits)
    if not unseen:
        return None
    held = {name: sum(not set(unseen).isdisjoint(item) for item in part)
            for name, part in zip(("dev", "test"), splits.items[1:])}
    parts = [name for name, n in held.items() if n]
    where = " and ".join(f"{held[name]:,} {name} item{'s' * (held[name] != 1)}" for name in parts)
    losses = " and ".join(f"{name}'s" for name in parts) + (" losses count" if len(parts) > 1 else " loss counts")
    one, most = len(unseen) == 1, 10
    symbols = ", ".join(show_symbols(c) for c in unseen[:most]) + (f" and {len(unseen) - most:,} more"
                                                                     if len(unseen) > most else "")
    it = "it" if one else "them"
    return (f"warning: {'the symbol' if one else 'the symbols'} {symbols} {'is' if one else 'are'} in {where} but in "
            f"no training item, so the model never learns to predict {it}, and {losses} {it} at what an unseen "
            f"symbol costs; give the list more items that hold {it}, or take those out")


def load_splits(path, block_size, seed=SPLIT_SEED):
    """Read the file, build the vocabulary from all of it, split the items, make the examples."""
    items, sha256 = read_items_and_digest(path)
    vocab = build_vocab(items)
    parts = split_items(items, seed)
    try:
        train, dev, test = (build_dataset(p, vocab, block_size) for p in parts)
    except NotEnoughMemory:
        raise
    except MemoryError:  # past the estimate build_dataset checks (a memory cap, say): the data is the cause
        raise DataError(f"the examples of data file {path} (a context of {block_size:,}) do not fit in the memory "
                        f"this process may use; use a smaller file or --block-size, or give it more memory (free "
                        f"some, or raise ulimit -v)") from None
    return Splits(vocab, train, dev, test, parts, sha256)
