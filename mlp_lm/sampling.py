"""Drawing new items from any next-symbol model, and telling which are new.

A model here is a function `next_probs(X, temperature)` from contexts X (n, T)
to next-symbol probabilities (n, V): the MLP (`functools.partial(model.next_probs,
params)`) and the n-gram models of counting.py both are one.
"""
import re
from pathlib import Path

import numpy as np

from . import shell
from .checks import check_generator, is_real, is_whole
from .streams import printable  # (here before streams.py had it: sample and the tests read it here)
from .data import BOUNDARY, SPLIT_SEED, Vocab, build_vocab, split_items
from .runtime import check_fits
from .wordfile import DataError, differs, read_items_and_digest


SAMPLE_BYTES = 64 * 2**20  # what one chunk of samples may hold, whatever -n, --max-length and V
FIRST_ROWS = 256  # the first chunk's samples: the first names show at once, not after a whole chunk's seconds
CUT = "…"  # shown after a sample that max_length cut off before it ended
SAMPLE_LENGTH = 64  # the longest a sample may grow by default, for a list of names or words
MAX_LENGTH = 100_000  # a sample draws its uniforms for all of it up front (16 bytes a symbol): 1.6 MB at most


def check_temperature(temperature):
    """ValueError unless temperature is a real number, 0 or more: a negative one would turn the
    distribution upside down, NaN makes it NaN, and True would pass for 1."""
    if not is_real(temperature) or not temperature >= 0:
        raise ValueError(f"temperature must be 0 or more, got {temperature!r}")


def tempered(scores, temperature):
    """Probabilities (B, V) from log-scores (B, V), a network's logits or a counting model's log
    probabilities: softmax(scores / temperature). Temperature 0 is greedy decoding: all the
    probability on the likeliest symbol, shared evenly by a tie."""
    z = scores - scores.max(axis=1, keepdims=True)  # shift first, so a tiny temperature cannot overflow
    if temperature == 0:
        return (z == 0).astype(np.float64) / (z == 0).sum(axis=1, keepdims=True)
    with np.errstate(over="ignore", under="ignore"):  # z / tiny -> -inf, and exp(-inf) = 0: both fine
        p = np.exp(z / temperature)
    return p / p.sum(axis=1, keepdims=True)


def sample_length(longest):
    """How long a sample may grow by default: SAMPLE_LENGTH symbols, or twice the longest item of the
    list the model learned from where that is more (a new user's list of paths, of up to 179 symbols,
    had most samples cut off at 64), and at most MAX_LENGTH."""
    return int(min(MAX_LENGTH, max(SAMPLE_LENGTH, 2 * longest)))


ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[tnr])")  # what printable writes


def unprinted(text):
    """text with the escapes printable writes (\\t, \\x1b, \\u2028) read back as the characters they stand for."""
    named = {"t": "\t", "n": "\n", "r": "\r"}

    def read(m):
        code = m.group()[1]
        if code in named:
            return named[code]
        n = int(m.group()[2:], 16)
        return chr(n) if n <= 0x10FFFF else m.group()  # \UFFFFFFFF is no character: left as it is
    return ESCAPE.sub(read, text)


def one_line(samples, ended):
    """The samples on one line, after a comma each. When one holds a comma and a space, a space at an
    edge, or starts with a quote, which the list would blur ('Dover, NY' would read as two samples,
    'Troisav ' as one without its space), each is quoted as a Python string literal: its backslashes and
    single quotes escaped, then its controls as printable escapes them, so that it reads back whole
    (ast.literal_eval); one cut off is marked after its closing quote."""
    if not any(re.search(r",\s", s) or s != s.strip() or s.startswith(("'", '"')) for s in samples):
        return ", ".join(shown(samples, ended))
    quoted = ("'" + printable(s.replace("\\", "\\\\").replace("'", "\\'")) + "'" for s in samples)
    return ", ".join(q + ("" if e else CUT) for q, e in zip(quoted, ended))


def shown(samples, ended):
    """Samples as a list on one line shows them: one cut off marked CUT, an empty one "(empty)", controls escaped."""
    return [printable(s or "(empty)") if e else printable(s) + CUT for s, e in zip(samples, ended)]


def samples_per_chunk(V, block_size, max_length, budget=SAMPLE_BYTES):
    """How many samples a chunk generates at once within `budget` bytes: a sample holds its
    uniforms and symbols (max_length of each), its context, and a few rows of V probabilities."""
    return max(1, budget // (16 * max_length + 8 * block_size + 8 * 6 * V))


def generate_chunks(next_probs, vocab, block_size, n, rng, *, temperature=1.0, top_k=None, prefix="",
                    max_length=SAMPLE_LENGTH, rows=None):
    """generate(), a chunk of samples at a time: yields (samples, ended) lists of up to `rows` samples, so
    memory stays bounded however many are asked for. By default the chunks start at FIRST_ROWS samples and
    double up to as many as fit SAMPLE_BYTES (about 28,000 for the lecture's model, a second or so of work):
    `sample -n 1000000 | head` shows its names at once. The chunks change nothing drawn (see generate)."""
    check_generator(rng)
    if top_k is not None and not is_whole(top_k):
        raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    if not is_whole(max_length):
        raise ValueError(f"max_length must be a whole number of at least 1, got {max_length!r}")
    check_temperature(temperature)
    for name, value, low in (("n", n, 0), ("rows", 1 if rows is None else rows, 1)):
        if not is_whole(value, low):
            raise ValueError(f"{name} must be a whole number of at least {low}, got {value!r}")
    if not is_whole(block_size):
        raise ValueError(f"block_size must be a whole number of at least 1, got {block_size!r}")
    if not isinstance(vocab, Vocab) or not isinstance(prefix, str):
        raise TypeError("vocab must be a data.Vocab and prefix a string")
    block_size = int(block_size)  # an np.int8 one would overflow the memory estimate
    if BOUNDARY in prefix:  # it would end the sample before it starts
        raise DataError(f"a prefix must not contain the boundary symbol {BOUNDARY!r}")
    prefix_ids = vocab.encode(prefix)  # raises DataError for unknown symbols
    if len(prefix_ids) >= max_length:  # every sample would be the prefix, cut off
        raise ValueError(f"the prefix has {len(prefix_ids)} symbols, leaving none of max_length {max_length} to draw")
    steps = max_length - len(prefix_ids)
    check_fits(16 * steps + 8 * 6 * len(vocab), f"one sample of up to {max_length:,} symbols",
               "use a smaller --max-length")
    most = rows or samples_per_chunk(len(vocab), block_size, steps)
    rows, first = rows or min(FIRST_ROWS, most), 0
    while first < n:  # over chunks of samples, not the math
        yield _generate(next_probs, vocab, block_size, min(rows, n - first), rng, temperature, top_k,
                        prefix, prefix_ids, steps)
        first, rows = first + rows, min(2 * rows, most)


def generate(next_probs, vocab, block_size, n, rng, *, temperature=1.0, top_k=None, prefix="", max_length=SAMPLE_LENGTH,
             with_ended=False, rows=None):
    """n samples, generated in parallel (one call of next_probs per position, not per sample).

    Each sample starts with `prefix` and ends where the model emits the boundary,
    or after max_length symbols. A chunk's uniforms are drawn as one (rows, L) block, L the
    symbols left after the prefix (max_length - len(prefix)), chunk after chunk from the same
    stream, so the first k samples of a run with n > k equal those of a run with n = k, whatever
    the chunk size, up to the last bit of BLAS's rounding: a matrix product of one row, or of a few,
    goes through other kernels than one of many and can round differently (5e-7 in a probability,
    measured), so a draw whose uniform falls that close to a boundary between two symbols can go the
    other way. A differential test found one such sample in about 244,000.
    with_ended=True also returns, per sample, whether it ended on its own (False:
    cut off at max_length).
    """
    samples, ended = [], []
    for s, e in generate_chunks(next_probs, vocab, block_size, n, rng, temperature=temperature, top_k=top_k,
                                prefix=prefix, max_length=max_length, rows=rows):
        samples += s
        ended += e
    return (samples, ended) if with_ended else samples


def _generate(next_probs, vocab, block_size, n, rng, temperature, top_k, prefix, prefix_ids, steps):
    """One chunk of n samples: (samples, ended)."""
    V = len(vocab)
    ctx = np.zeros((n, block_size), dtype=np.int64)  # (n, T), the boundary pads the start
    for i in prefix_ids:  # a loop over the prefix's characters, shared by all samples
        ctx = np.concatenate([ctx[:, 1:], np.full((n, 1), i)], axis=1)
    u = rng.random((n, steps))  # (n, L), L = steps, the symbols after the prefix
    out = np.zeros((n, steps), dtype=np.int64)  # (n, L), 0 (the boundary) pads finished samples
    live = np.arange(n)  # the samples not yet ended: only their next symbols are worked out (names end after
    # about 7 of the 64 symbols they may take, so the rows of the ended ones would be most of the work; the
    # last few samples of a chunk are then computed as a few rows, see generate on BLAS's rounding)
    for t in range(steps):  # generation is sequential in time; the samples go in parallel
        p = np.asarray(next_probs(ctx, temperature), dtype=np.float64)  # (m, V), m = len(live)
        if p.shape != (len(live), V) or not np.all(p >= 0) or not np.all(np.isfinite(total := p.sum(axis=1))) \
                or not np.all(total > 0):  # NaN fails these too
            raise ValueError(f"the model gave {p.shape} next-symbol probabilities that are not {len(live)} "
                             f"distributions over the vocabulary's {V} symbols (a model of another vocabulary, or a "
                             f"broken one)")
        if top_k is not None and top_k < V:
            kth = np.partition(p, V - top_k, axis=1)[:, V - top_k, None]  # (m, 1) k-th largest
            p = np.where(p >= kth, p, 0.0)
        cdf = np.cumsum(p, axis=1)  # (m, V)
        # Inverse-CDF sampling: the first index whose cumulative probability exceeds u * total.
        ix = (cdf < u[live, t][:, None] * cdf[:, -1:]).sum(axis=1)  # (m,)
        ix = np.minimum(ix, V - 1)
        out[live, t] = ix
        going = ix != 0  # the boundary ends a sample
        if not going.all():
            live, ctx, ix = live[going], ctx[going], ix[going]
            if not len(live):
                break
        ctx = np.concatenate([ctx[:, 1:], ix[:, None]], axis=1)
    done = np.ones(n, dtype=bool)
    done[live] = False  # the ones still going after max_length symbols are cut off
    ends = np.where(done, (out == 0).argmax(axis=1), steps)  # (n,) each sample's length: to its boundary, or all
    samples = [prefix + vocab.decode(row[:end]) for row, end in zip(out, ends)]  # bookkeeping, not math
    return samples, done.tolist()


class Novelty:
    """Counts samples that are in the training set, in dev/test, or new, chunk by chunk; and
    apart, as no name at all, the ones cut off at their length limit and the empty ones (the
    model ended at once).

    Novelty(config) reads the training data a checkpoint's config names, and its .why is None when it
    could, else the reason it could not; then .symbols are the symbols that data gives (a checkpoint with
    others is damaged, unless wordfile.read_otherwise says why). Novelty(split=(train, dev, test)) counts
    against items in hand.
    """

    def __init__(self, config=None, *, split=None):
        self.counts, self.empty, self.cut, self.why, self.symbols = [0, 0, 0], 0, 0, None, None
        train, dev, test = split if split is not None else self._read(config) or ((), (), ())
        self.train, self.heldout = set(train), set(dev) | set(test)
        self.longest = max(map(len, self.train | self.heldout), default=0)  # symbols of the longest item

    def _read(self, config):
        """The (train, dev, test) items of the data the config names, or None with the reason in self.why."""
        data_path = config.get("data")
        if not data_path:
            self.why = "the checkpoint does not record its training data"
            return None
        recorded, changed = config.get("data_sha256"), f"the training data {data_path} has changed since training"
        if not recorded:  # a config written by hand or from a notebook: its data path may not be what it trained on
            self.why = "the checkpoint does not record its training data's checksum (data_sha256)"
            return None
        try:
            items, sha256 = read_items_and_digest(data_path)
            if recorded and sha256 != recorded:
                self.why = changed
                return None
            self.symbols = build_vocab(items).itos
            return split_items(items, config.get("split_seed", SPLIT_SEED))
        except DataError as e:  # gone, unreadable or no longer usable: changed, above all, if it did
            gone = not Path(data_path).exists()  # DataError's advice to pass another file is a training's, not ours:
            # its message says what is wrong, then ("; ", after the path, which may hold one) what to pass --data
            # instead, which sample does not take
            said = str(e)
            after = said.find(str(data_path)) + len(str(data_path)) if str(data_path) in said else 0
            self.why = (changed if differs(data_path, recorded) else f"its training data {shell.shown(data_path)} is not there any "
                        f"more" if gone else said[:after] + said[after:].split("; ")[0])
            return None

    def add(self, samples, ended):
        """Count a chunk of samples; ended: whether each ended on its own (see generate)."""
        self.cut += sum(not e for e in ended)
        samples = [s for s, e in zip(samples, ended) if e]
        self.empty += sum(not s for s in samples)
        samples = [s for s in samples if s]
        if self.why is None:
            in_train = sum(s in self.train for s in samples)
            in_heldout = sum(s in self.heldout and s not in self.train for s in samples)
            for i, c in enumerate((in_train, in_heldout, len(samples) - in_train - in_heldout)):
                self.counts[i] += c

    def fields(self):
        """The counts as metrics.json and --json files hold them (none when it cannot say)."""
        names = ("samples_in_train", "samples_in_dev_test", "samples_new")
        return dict(zip(names, self.counts)) if self.why is None else {}

    def summary(self, limit=None):
        """'a in the training set, b in dev/test, c new' (or why it cannot say), and ', d empty' and
        '; e cut off at LIMIT, marked …, not counted' when there are any (limit: say, "--max-length 80";
        by default the default length for this list, "64 symbols" for names)."""
        limit = limit or f"{sample_length(self.longest)} symbols"
        rest = (f", {self.empty} empty" if self.empty else "") + (
            f"; {self.cut} cut off at {limit}, marked {CUT}, not counted" if self.cut else "")
        if self.why is not None:
            return f"cannot say which are new: {self.why}{rest}"
        return f"{self.counts[0]} in the training set, {self.counts[1]} in dev/test, {self.counts[2]} new{rest}"
