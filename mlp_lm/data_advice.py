"""What train, evaluate and ngram say about the word list itself before any number: items far longer than
the rest, sizes the data cannot use, accents written two ways, letters in both cases (and, from data.py,
items repeated across the splits and symbols no training item holds)."""
import unicodedata

import numpy as np

from .data import repeats_warning, unseen_symbols_warning

LONG = 10  # an item more than this many times the list's median length ...
LONG_AT_LEAST = 100  # ... and this many symbols is far longer than the rest (a paragraph among names, not a phrase)
HEAVY = 0.2  # long items that give more than this share of a split's examples are warned of


SPLITS = ("training", "dev", "test")


def long_items(splits, parts=None, names=SPLITS):
    """({split name: (lengths of its long items, sorted, their share of its examples)} for each split whose
    examples come more than HEAVY from long items, the list's median item length). An item of n symbols
    gives n + 1 examples, so one paragraph pasted into a list of names can outweigh the rest of whichever
    split it lands in. Long: more than LONG times the median and LONG_AT_LEAST symbols, or an item that
    alone gives over half of all the examples (in a list of two or more). parts and names: other lists of
    items than splits.items, and their names (evaluate's --data: one file, of every item)."""
    lengths = [np.array([len(item) for item in part], dtype=np.int64) for part in (parts or splits.items)]
    everything = np.concatenate(lengths)
    median = float(np.median(everything))
    n_all = int(everything.sum()) + len(everything)
    found = {}
    for name, part in zip(names, lengths):
        long = np.sort(part[((part > LONG * median) & (part >= LONG_AT_LEAST)) |
                            ((2 * (part + 1) > n_all) & (len(everything) > 1))])
        share = int((long + 1).sum()) / max(int(part.sum()) + len(part), 1)
        if share > HEAVY:
            found[name] = (long, share)
    return found, median


def long_items_warnings(splits, parts=None, names=SPLITS):
    """A warning for each split whose examples come more than HEAVY from long items (long_items; parts and names
    as there, where a name that is not a split's is the file's)."""
    found, median = long_items(splits, parts, names)
    typical = f"{median:,.0f}" if median.is_integer() else f"{median:,.1f}"
    for where, (long, share) in found.items():
        sizes = f"{long[0]:,}" if long[0] == long[-1] else f"{long[0]:,} to {long[-1]:,}"
        if len(long) == 1:
            said = f"one item, of {sizes} symbols (the list's median is {typical}), gives"
            fix = "it is no item of the list (a paragraph or a file pasted in), take it out"
        else:
            said = f"{len(long):,} items, of {sizes} symbols each (the list's median is {typical}), give"
            fix = "they are no items of the list (paragraphs or files pasted in), take them out"
        whose = f"the {where} split's" if parts is None else f"{where}'s"  # a file named dev is a file
        yield f"warning: {said} {100 * share:.1f}% of {whose} examples; if {fix}"


def size_warnings(cfg, splits):
    """Warnings for sizes the data cannot use: a batch larger than the training set, a context longer than
    the longest item (its first positions are then the boundary in every context)."""
    n_train, longest = len(splits.train[1]), max(len(item) for part in splits.items for item in part)
    if cfg.batch_size > n_train:
        yield (f"warning: the batch ({cfg.batch_size:,}) is larger than the training set ({n_train:,} examples), so "
               f"every step draws examples more than once; a --batch-size of {n_train:,} or less costs less")
    if cfg.block_size > longest:
        extra = cfg.block_size - longest
        yield (f"warning: the context ({cfg.block_size:,}) is longer than the longest item ({longest:,} "
               f"symbol{'s' if longest != 1 else ''}), so its first {extra:,} position{'s' if extra != 1 else ''} "
               f"hold{'s' if extra == 1 else ''} the boundary in every context and tell{'s' if extra == 1 else ''} "
               f"the model nothing; --block-size {longest:,} does the same for less")


def accents_warning(splits):
    """A warning when the list writes accents two ways: as one character (é) in some items and as a
    letter and a combining mark (e + U+0301) in others, or Hangul as syllables and as jamo. The same
    letter on screen can then be two symbols; Unicode's NFC form writes each one way. None when the
    items are all in NFC, or all those that are not hold no character NFC would compose (a list written
    all in NFD is consistent, and a letter no single character writes is left as it is)."""
    pairs = [(item, unicodedata.normalize("NFC", item)) for part in splits.items for item in part if not item.isascii()]
    changed = [nfc for item, nfc in pairs if nfc != item]  # in NFC, the characters the item would have
    kept = {c for item, nfc in pairs if nfc == item for c in item}
    composed = sorted(c for c in kept if len(unicodedata.normalize("NFD", c)) > 1)  # é, 우: one character
    if not (changed and composed):
        return None
    made = {c for nfc in changed for c in nfc}
    shown = sorted(made & set(composed)) or composed  # a letter written both ways, if there is one
    return (f"warning: the list writes accents two ways, as one character ({shown[0]}) in some items and as a "
            f"letter and a combining mark in {len(changed):,} other{'s' if len(changed) != 1 else ''}, so one letter "
            f"on screen can be two symbols; normalise it first (unicodedata.normalize(\"NFC\", line)) if they "
            f"should be one")


def case_note(splits):
    """A note when the list writes letters in both cases (a list of names written Emma, Olivia): the model
    learns 'E' and 'e' as two symbols, which is right if case matters and costs it data if not. None when
    no letter is in the vocabulary both ways."""
    symbols = set(splits.vocab.itos)
    # a capital (or title-case) letter beside the one letter it lower-cases to: ª or ɾ, which are their own lower
    # case, have no capital, and Σ counts once beside both σ and ς
    both = sorted(c for c in symbols if len(c.lower()) == 1 and c.lower() != c and c.lower() in symbols)
    letters = len({c.lower() for c in both})  # Ǆ and ǅ are one letter's capital and title case
    if not both:
        return None
    return (f"note: the list writes {letters} letter{'s' if letters != 1 else ''} in both cases ("
            f"{both[0]} and {both[0].lower()}{', ...' if len(both) > 1 else ''}), which the model learns as different "
            f"symbols; if case does not matter, lower-case the list first (Python's str.lower(); tr changes only "
            f"ASCII letters)")


def data_warnings(splits):
    """The warnings about the list itself that train and ngram print first, those that apply: items repeated
    across the splits, symbols no training item holds, accents written two ways, letters in both cases, and
    splits weighed down by long items."""
    return [w for w in (repeats_warning(splits), unseen_symbols_warning(splits), accents_warning(splits),
                        case_note(splits)) if w] + list(long_items_warnings(splits))
