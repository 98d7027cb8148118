"""Count-based next-character models: interpolated modified Kneser-Ney, and add-k.

They see exactly the MLP's examples: `data.build_dataset(items, vocab, block_size=n-1)`
gives contexts X (N, n-1), padded at the start with the boundary 0, and targets Y (N,).
A 0 in a context is always padding (items never contain the boundary; it is only ever
the final target), so a context holding a 0 holds 0s in every position before it.

Shapes: N training examples, B contexts asked about, V symbols, n the order of the
model (an n-gram is n - 1 context symbols and the symbol after them), M n-grams of one
order, K distinct contexts of one length (H stays the network's hidden size).

Contexts become integers (contexts.py): each context seen in training gets an id, and an
n-gram of context id h is the key h * V + w in a sorted table.
"""
import math
from collections import namedtuple

import numpy as np

from .checks import is_real, is_whole
from .contexts import Contexts, entries, find, starts
from .sampling import check_temperature, tempered

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback defaults
CHUNK_ELEMENTS = 1 << 22  # probs() builds at most this many (row, symbol) entries at a time: 32 MB
TARGET_ROWS = 1 << 18  # target_probs() looks up at most this many rows at a time: about 40 MB
K_GRID = tuple(np.logspace(-3, 0, 13))  # add-k's candidate k: 1e-3 .. 1, four per decade


class _CountModel:
    """What both models share: the argument checks, chunked full distributions, NLL, temperature."""

    def __init__(self, n):
        if not is_whole(n):
            raise ValueError(f"the order n must be a whole number >= 1, got {n!r}")
        self.n = int(n)
        self.V = None

    def _context(self, X):
        """The last n - 1 columns of X (B, T >= n-1), as int64."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] < self.n - 1:
            raise ValueError(f"an order-{self.n} model needs contexts of shape (B, >= {self.n - 1}), got {X.shape}")
        if X.size and X.dtype.kind not in "iu":  # 1.7 would be read as 1
            raise ValueError(f"contexts must hold integer symbol indices, got {X.dtype}")
        return X[:, X.shape[1] - (self.n - 1):].astype(np.int64, copy=False)  # read, never written: no copy needed

    def _check(self, X, Y, V=None):
        if V is None:
            if self.V is None:
                raise ValueError("fit the model before asking it for probabilities")
            V = self.V
        elif not is_whole(V):
            raise ValueError(f"the vocabulary size must be a whole number, at least 1, got {V!r}")
        Y = np.asarray(Y)
        if Y.size and Y.dtype.kind not in "iu":
            raise ValueError(f"targets must hold integer symbol indices, got {Y.dtype}")
        X, Y = self._context(X), Y.astype(np.int64, copy=False)
        if Y.shape != (len(X),):
            raise ValueError(f"need one target per context: X has {len(X)} rows, Y has shape {Y.shape}")
        for what, a in (("context", X), ("target", Y)):
            if a.size and (a.min() < 0 or a.max() >= V):
                raise ValueError(f"a {what} symbol is outside 0 .. {V - 1} (vocabulary size {V})")
        return X, Y, int(V)

    def probs(self, X):
        """p(w | context) (B, V) float64 for every symbol w, built a chunk of rows at a time."""
        X = self._check(X, np.zeros(len(X), dtype=np.int64))[0]
        rows = max(1, CHUNK_ELEMENTS // self.V)
        if len(X) <= rows:  # one chunk: no copy into a concatenation
            return self._probs(X)
        return np.concatenate([self._probs(X[s:s + rows]) for s in range(0, len(X), rows)])

    def target_probs(self, X, Y):
        """p(Y | X) (B,), without building the (B, V) distributions; TARGET_ROWS rows at a time, since each
        row's context ids and lookups take about 150 bytes (a list of a million made-up names: 900 MB more
        for its 6.1 million training examples at once, the 6-gram's peak)."""
        chunks = [self._target_probs(X, Y) for X, Y in self._target_chunks(X, Y)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)  # one chunk: no copy into a concatenation

    def _target_chunks(self, X, Y):
        """The checked contexts and targets, TARGET_ROWS rows at a time."""
        X, Y, _ = self._check(X, Y)
        return [(X[s:s + TARGET_ROWS], Y[s:s + TARGET_ROWS]) for s in range(0, max(len(Y), 1), TARGET_ROWS)]

    def nll(self, X, Y):
        """Mean negative log likelihood of the targets, in nats."""
        if len(Y) == 0:
            raise ValueError("cannot evaluate the loss of no examples")
        total = sum(float(np.log(self._target_probs(X, Y)).sum()) for X, Y in self._target_chunks(X, Y))
        return -total / len(Y)

    def next_probs(self, X, temperature=1.0):
        """probs(X) ** (1 / temperature), renormalised (B, V): what sampling.generate calls.

        temperature 0 is greedy decoding, as for the network (model.next_probs): all the
        probability on the likeliest symbol, shared evenly by a tie.
        """
        check_temperature(temperature)
        with np.errstate(divide="ignore"):  # a probability that underflows to 0 (add-k with a tiny k): log -inf
            return tempered(np.log(self.probs(X)), temperature)  # (B, V)


def modified_kn_discounts(counts):
    """(D1, D2, D3+) from the count-of-counts n_r of one order's counts, and whether they fell back.

    The estimate (Chen & Goodman 1998) is undefined when n1, n2 or n3 is 0, and useless
    when a discount is not positive (a context would give nothing to the lower order).
    Then the order falls back to FALLBACK_DISCOUNTS, as KenLM's --discount_fallback does.
    This happens on tiny data, and for the unigrams of a small alphabet: of names' 27
    unigrams, hardly any has a count (raw or continuation) of 1, 2 or 3.
    """
    n1, n2, n3, n4 = np.bincount(counts, minlength=5)[1:5].astype(np.float64)
    if min(n1, n2, n3) == 0:
        return np.array(FALLBACK_DISCOUNTS), True
    Y = n1 / (n1 + 2 * n2)
    D = np.array([1 - 2 * Y * n2 / n1, 2 - 3 * Y * n3 / n2, 3 - 4 * Y * n4 / n3])
    if np.all(D > 0):  # D_r <= r holds by construction, so c - D(c) >= 0
        return D, False
    return np.array(FALLBACK_DISCOUNTS), True


_Order = namedtuple("_Order", "keys alpha gamma start")  # one order's n-grams, sorted by key


class KneserNey(_CountModel):
    """Interpolated modified Kneser-Ney (Chen & Goodman 1998, "An Empirical Study of
    Smoothing Techniques for Language Modeling", TR-10-98, the section on modified Kneser-Ney).

    For an order-k n-gram h w (h the last k - 1 symbols, w the next one), k = n .. 1:

        p_k(w | h) = (c_k(h w) - D_k(c_k(h w))) / c_k(h)  +  gamma_k(h) * p_{k-1}(w | h')
        gamma_k(h) = (D_k1 * N1(h .) + D_k2 * N2(h .) + D_k3+ * N3+(h .)) / c_k(h)
        p_0(w)     = 1 / V

    h' is h without its leftmost symbol; c_k(h) = sum over w of c_k(h w); N_r(h .) is the
    number of symbols w with c_k(h w) = r (N3+: >= 3); D_k(c) = 0, D_k1, D_k2, D_k3+ for
    c = 0, 1, 2, >= 3. If h has no n-grams at order k, p_k(w | h) = p_{k-1}(w | h'). The counts:

        c_n(h w) = how often h w occurs in training (the raw count), and for k < n
        c_k(h w) = N1+(. h w), the number of distinct symbols v with c_{k+1}(v h w) > 0.

    Each order's discounts come from its count-of-counts n_r (how many n-grams have c_k = r):

        Y = n1 / (n1 + 2 n2),  D_k1 = 1 - 2Y n2/n1,  D_k2 = 2 - 3Y n3/n2,  D_k3+ = 3 - 4Y n4/n3

    (modified_kn_discounts says what tiny data gets). Every p_k(. | h) sums to 1 and,
    through the uniform p_0, is never 0. `discounts` (n, 3) holds (D_k1, D_k2, D_k3+) for
    k = 1 .. n, and `fallback` (n,) says which orders had to use FALLBACK_DISCOUNTS.

    Padding. The leading boundaries of a context stand for one start-of-item mark, and the
    model treats them the way KenLM treats <s>: an n-gram starting with exactly one
    boundary keeps its raw count at every order (padding is its only possible left
    extension, so its N1+ would always be 1), and one starting with two or more boundaries
    is the same event as its suffix with one, so it is left out of its order (its context
    falls through). The model then counts the n-grams KenLM would count in items written
    "<s> e m m a </s>", with <s> and </s> both the symbol 0. (Keeping the raw counts of all
    the padded n-grams instead would discount the same counts once per padded order,
    leaving the lower orders too little weight near the start of an item.)
    """

    def fit(self, X, Y, vocab_size):
        """Count the n-grams of contexts X (N, >= n-1) followed by targets Y (N,); returns self."""
        X, Y, V = self._check(X, Y, vocab_size)
        if len(Y) == 0:
            raise ValueError("cannot fit a model to no examples")
        self.V, self.ctx = V, Contexts(X, V)
        self.orders = [None] * (self.n + 1)  # orders[k]: the order-k table, k = 1 .. n
        self.discounts, self.fallback = np.zeros((self.n, 3)), np.zeros(self.n, dtype=bool)
        upper = None  # the order-(k+1) keys, once that order is counted
        for k in range(self.n, 0, -1):  # highest order first: each lower order counts the one above
            keys, c = np.unique(self.ctx.train_ids[k - 1] * V + Y, return_counts=True)  # (M,) raw c(h w)
            self.ctx.train_ids[k - 1] = None  # this length's ids serve this order only (the peak RSS 3% lower)
            h = keys // V
            if k < self.n:  # N1+(. h w): each distinct (k+1)-gram v h w adds 1 to its h w
                vh = upper // V  # (M',) context v h of each (k+1)-gram
                _, cont = np.unique(self.ctx.rest[k][vh] * V + upper % V, return_counts=True)  # same n-grams as keys
                c = np.where(self.ctx.leading_boundaries(k - 1, h) == 1, c, cont)
            upper = keys
            keep = self.ctx.leading_boundaries(k - 1, h) < 2
            keys, c, h = keys[keep], c[keep], h[keep]
            D, self.fallback[k - 1] = modified_kn_discounts(c)
            self.discounts[k - 1] = D
            Dc = D[np.minimum(c, 3) - 1]  # (M,) D_k(c_k(h w))
            K = len(self.ctx.keys[k - 1])
            total = np.bincount(h, weights=c, minlength=K)  # (K,) c_k(h); 0 for a left-out context
            gamma = np.bincount(h, weights=Dc, minlength=K) / np.maximum(total, 1)
            gamma[total == 0] = 1.0  # a left-out context passes p_{k-1} through unchanged
            self.orders[k] = _Order(keys, (c - Dc) / total[h], gamma, starts(h, K))
        self.ctx.train_ids = None  # all let go: 6 x 8 bytes a training example for a 6-gram
        return self

    def _target_probs(self, X, Y):  # target_probs on checked X (B, n-1) and Y (B,)
        V = self.V
        ids = self.ctx.ids(X)
        p = np.full(len(Y), 1.0 / V)  # p_0: uniform
        for k in range(1, self.n + 1):
            o, h = self.orders[k], ids[k - 1]
            pos = find(o.keys, h * V + Y, h >= 0)
            found = o.alpha[np.maximum(pos, 0)] if len(o.alpha) else 0.0  # an order can be empty (long n)
            alpha = np.where(pos >= 0, found, 0.0)  # (c - D(c)) / c(h), 0 for an unseen h w
            p = np.where(h >= 0, alpha + o.gamma[h] * p, p)  # an unseen h (id -1) keeps p_{k-1}
        return p

    def _probs(self, X):
        ids = self.ctx.ids(X)
        # Order 1's context is empty, so p_1 is one (V,) vector for every row: built once and
        # copied, rather than scattered into each row (on a vocabulary of thousands, the bulk
        # of the work). The same arithmetic in the same order as the orders above it.
        o = self.orders[1]
        p1 = np.full(self.V, 1.0 / self.V) * o.gamma[0]  # (V,)
        p1[o.keys % self.V] += o.alpha  # the empty context (id 0) owns every order-1 n-gram
        p = np.tile(p1, (len(X), 1))  # (B, V) p_1
        for k in range(2, self.n + 1):
            o, h = self.orders[k], ids[k - 1]
            p *= np.where(h >= 0, o.gamma[h], 1.0)[:, None]  # an unseen h (id -1) keeps p_{k-1}
            rows = np.flatnonzero(h >= 0)  # (R,) rows whose context training saw
            row, pos = entries(o.start, h[rows])
            p[rows[row], o.keys[pos] % self.V] += o.alpha[pos]  # each (row, w) once: fancy += loses nothing
        return p


class AddK(_CountModel):
    """Add-k smoothing of the order-n counts: p(w | h) = (c(h w) + k) / (c(h) + k V).

    c(h w) counts h w in training, c(h) = sum over w of c(h w); an unseen h gets 1 / V.
    """

    def __init__(self, n, k=1.0):
        super().__init__(n)
        if not is_real(k) or not 0 < k < math.inf:  # k = inf gives inf / inf: every probability NaN
            raise ValueError(f"k must be positive and finite, got {k!r}")
        self.k = float(k)  # not an np.uint8's or a float16's arithmetic: k * V would wrap or overflow

    def fit(self, X, Y, vocab_size):
        X, Y, V = self._check(X, Y, vocab_size)
        if len(Y) == 0:
            raise ValueError("cannot fit a model to no examples")
        self.V, self.ctx = V, Contexts(X, V)
        self.keys, self.counts = np.unique(self.ctx.train_ids[-1] * V + Y, return_counts=True)  # c(h w)
        self.ctx.train_ids = None  # the training rows' context ids serve the counting only: let them go
        ctx, K = self.keys // V, len(self.ctx.keys[-1])
        self.total, self.start = np.bincount(ctx, weights=self.counts, minlength=K), starts(ctx, K)  # c(h)
        return self

    def _target_probs(self, X, Y):
        V = self.V
        h = self.ctx.ids(X)[-1]
        pos = find(self.keys, h * V + Y, h >= 0)
        c = np.where(pos >= 0, self.counts[pos], 0)
        return (c + self.k) / (np.where(h >= 0, self.total[h], 0.0) + self.k * V)

    def _probs(self, X):
        h = self.ctx.ids(X)[-1]
        p = np.full((len(X), self.V), float(self.k))  # (B, V)
        rows = np.flatnonzero(h >= 0)
        row, pos = entries(self.start, h[rows])
        p[rows[row], self.keys[pos] % self.V] += self.counts[pos]
        return p / (np.where(h >= 0, self.total[h], 0.0) + self.k * self.V)[:, None]


def choose_k(Xtr, Ytr, Xdev, Ydev, n, V, grid=K_GRID):
    """The k in grid with the lowest dev NLL, and the add-k model fitted with it: (k, model)."""
    if len(grid) == 0 or not all(0 < k < math.inf for k in grid):
        raise ValueError(f"the grid of k must hold positive, finite values, got {tuple(grid)!r}")
    model = AddK(n).fit(Xtr, Ytr, V)
    losses = []
    for k in grid:  # the counts do not depend on k: count once, score dev for each k
        model.k = float(k)
        losses.append(model.nll(Xdev, Ydev))
    model.k = float(grid[int(np.argmin(losses))])
    return model.k, model
