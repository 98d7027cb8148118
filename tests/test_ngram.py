"""The count-based models (counting.py) against slow references, and the n-gram driver (ngram.py)."""
import json
import math
from collections import Counter, defaultdict
from fractions import Fraction

import numpy as np
import pytest

from mlp_lm import counting
from mlp_lm.counting import AddK, KneserNey, choose_k, modified_kn_discounts
from mlp_lm.data import Vocab, build_dataset, build_vocab, load_splits

from .conftest import NAMES, run_cli

TINY = ["abc", "abca", "bca", "cab", "aa", "abcab", "b", "cc", "acb", "bab", "abc", "ca", "abcc"]
UNSEEN = ["cccccc", "bbbbbbb", "acacac", "cba"]  # contexts (some) the tiny corpus never has
# KenLM's --discount_fallback defaults, written here rather than imported: a reference that took the
# code's constant would follow it wherever it went (a mutation audit's)
KENLM_FALLBACK = (0.5, 1.0, 1.5)


# --- a slow, obviously correct reference -----------------------------------

def reference_kn(items, n, V):
    """p(w | history) straight from the definitions, with dicts of tuples.

    items are lists of symbol ids (never 0). Each is read as KenLM reads a sentence,
    <s> item </s>, with 0 for both marks and no padding: n-grams never reach past <s>.
    The highest order keeps raw counts, and so does any n-gram starting with <s>; every
    other n-gram gets its number of distinct left extensions.
    """
    raw = Counter()
    for item in items:
        s = [0] + item + [0]
        for i in range(1, len(s)):  # every position after <s> is predicted
            for k in range(1, min(n, i + 1) + 1):
                raw[tuple(s[i - k + 1:i + 1])] += 1
    left = defaultdict(set)
    for g in raw:
        if len(g) >= 2:
            left[g[1:]].add(g[0])
    count = {g: c if len(g) == n or (len(g) >= 2 and g[0] == 0) else len(left[g]) for g, c in raw.items()}
    discounts = {}
    for k in range(1, n + 1):
        nr = Counter(c for g, c in count.items() if len(g) == k)
        n1, n2, n3, n4 = nr[1], nr[2], nr[3], nr[4]
        d = KENLM_FALLBACK
        if n1 and n2 and n3:
            Y = n1 / (n1 + 2 * n2)
            d = (1 - 2 * Y * n2 / n1, 2 - 3 * Y * n3 / n2, 3 - 4 * Y * n4 / n3)
            if min(d) <= 0:
                d = KENLM_FALLBACK
        discounts[k] = d
    following = defaultdict(dict)  # context tuple -> {w: count}
    for g, c in count.items():
        following[g[:-1]][g[-1]] = c

    def prob(history, w):
        p = 1 / V  # order 0
        for k in range(1, min(n, len(history) + 1) + 1):
            h = tuple(history[len(history) - (k - 1):])  # the last k - 1 symbols
            seen = following.get(h)
            if not seen:  # a context this order never saw: p_k = p_{k-1}
                continue
            d = discounts[k]
            disc = lambda c: d[min(c, 3) - 1] if c else 0
            total = sum(seen.values())
            gamma = sum(disc(c) for c in seen.values()) / total
            c = seen.get(w, 0)
            p = (c - disc(c)) / total + gamma * p
        return p

    return prob, discounts


def history(row):
    """A padded context row as KenLM would see it: its leading boundaries become one <s>."""
    row = list(row)
    return [0] + [s for s in row if s] if 0 in row else row


def dataset(items, vocab, T):
    return build_dataset(items, vocab, T)


# --- Kneser-Ney against the reference ---------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_kn_matches_the_reference_on_a_tiny_corpus(n):
    vocab = build_vocab(TINY + UNSEEN)
    X, Y = dataset(TINY, vocab, max(n - 1, 1))
    model = KneserNey(n).fit(X, Y, len(vocab))
    prob, discounts = reference_kn([vocab.encode(i) for i in TINY], n, len(vocab))
    np.testing.assert_allclose(model.discounts, [discounts[k] for k in range(1, n + 1)], rtol=1e-12)
    Xq, _ = dataset(TINY + UNSEEN, vocab, max(n - 1, 1))
    want = [[prob(history(row[len(row) - (n - 1):]) if n > 1 else [], w) for w in range(len(vocab))] for row in Xq]
    np.testing.assert_allclose(model.probs(Xq), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [3, 5])
def test_kn_matches_the_reference_where_the_discount_formula_is_used(n):
    rng = np.random.default_rng(n)
    zipf = 1 / np.arange(1, 9) / sum(1 / np.arange(1, 9))  # 8 letters, some much commoner than others
    items = ["".join(rng.choice(list("abcdefgh"), rng.integers(1, 7), p=zipf)) for _ in range(300)]
    vocab = build_vocab(items)
    X, Y = dataset(items, vocab, n - 1)
    model = KneserNey(n).fit(X, Y, len(vocab))
    assert not model.fallback[1:].any()  # the orders above the unigrams estimate their discounts
    prob, discounts = reference_kn([vocab.encode(i) for i in items], n, len(vocab))
    np.testing.assert_allclose(model.discounts, [discounts[k] for k in range(1, n + 1)], rtol=1e-12)
    Xq, Yq = X[::7], Y[::7]
    np.testing.assert_allclose(model.target_probs(Xq, Yq), [prob(history(r), w) for r, w in zip(Xq, Yq)],
                               rtol=1e-12)


def big_vocab(V):
    """A vocabulary of V symbols: the boundary and V - 1 distinct non-ASCII characters."""
    return Vocab("." + "".join(chr(0x10000 + i) for i in range(V - 1)))


@pytest.mark.parametrize("V,n,items", [
    # V = 3000, n = 8: V**7 would not fit in int64.
    (3000, 8, [list(np.random.default_rng(i).integers(1, 3000, size=1 + i % 9)) for i in range(150)]),
    # V = 2**16, n = 5: an n-gram key sum(symbol * V**position) wraps around at 2**64, so
    # "A B C D E" and "F B C D E" would be one n-gram; here they must stay two.
    (2 ** 16, 5, [[11, 2, 3, 4, 5]] * 3 + [[65000, 2, 3, 4, 5], [65000, 2, 3, 4, 6], [7, 2, 3, 4, 6]]),
])
def test_a_large_vocabulary_does_not_overflow(V, n, items):
    vocab = big_vocab(V)
    strings = [vocab.decode(i) for i in items]
    X, Y = dataset(strings, vocab, n - 1)
    model = KneserNey(n).fit(X, Y, V)
    prob, _ = reference_kn([list(map(int, i)) for i in items], n, V)
    rows = np.arange(0, len(Y), max(1, len(Y) // 40))
    others = np.random.default_rng(0).integers(0, V, size=len(rows))  # mostly unseen after the context
    for targets in (Y[rows], others):
        np.testing.assert_allclose(model.target_probs(X[rows], targets),
                                   [prob(history(X[r]), w) for r, w in zip(rows, targets)], rtol=1e-12)
    P = model.probs(X[rows])
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(P[np.arange(len(rows)), Y[rows]], model.target_probs(X[rows], Y[rows]))


def test_discounts_from_count_of_counts_by_hand():
    # Symbols 1-4 once, 5 and 6 twice, 7 three times, 8 four times: n1 = 4, n2 = 2, n3 = 1, n4 = 1.
    # Y = 4 / (4 + 2*2) = 1/2; D1 = 1 - 2(1/2)(2/4) = 1/2; D2 = 2 - 3(1/2)(1/2) = 5/4; D3+ = 3 - 4(1/2)(1/1) = 1.
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4])
    D, fell_back = modified_kn_discounts(counts)
    np.testing.assert_allclose(D, [0.5, 1.25, 1.0], rtol=1e-15)
    assert not fell_back
    # A unigram model of those 15 symbols over V = 10 (0 and 9 unseen): its only order keeps raw
    # counts; gamma = (4*1/2 + 2*5/4 + 2*1) / 15 = 6.5/15, so p(w) = (c(w) - D(c(w))) / 15 + 0.65/15.
    Y = np.repeat(np.arange(1, 9), [1, 1, 1, 1, 2, 2, 3, 4])
    model = KneserNey(1).fit(np.zeros((15, 0), dtype=np.int64), Y, 10)
    np.testing.assert_allclose(model.discounts, [[0.5, 1.25, 1.0]])
    want = np.array([0.65, 1.15, 1.15, 1.15, 1.15, 1.4, 1.4, 2.65, 3.65, 0.65]) / 15
    np.testing.assert_allclose(model.probs(np.zeros((1, 0), dtype=np.int64))[0], want, rtol=1e-14)


@pytest.mark.parametrize("counts", [
    [1, 1, 2],  # no count of 3: D2 = 2 - 3Y n3/n2 would be 2, D3+ = 3 - 4Y n4/n3 undefined
    [2, 2, 3],  # no count of 1
    [1, 2] + [3] * 10,  # D2 = 2 - 3(1/3)(10/1) < 0
])
def test_discounts_fall_back_when_the_estimate_is_undefined_or_not_positive(counts):
    D, fell_back = modified_kn_discounts(np.array(counts))
    assert fell_back and tuple(D) == KENLM_FALLBACK


def test_add_k_is_add_one_by_default():
    # the advice's "add-one unigram" (advice.py) is AddK(1) with its default k: (c(w) + 1) / (N + V)
    Y = np.array([1, 1, 2, 0, 1, 3, 1])
    X = np.zeros((len(Y), 2), dtype=np.int64)
    V = 5
    c = np.bincount(Y, minlength=V)
    assert AddK(1).fit(X, Y, V).nll(X, Y) == pytest.approx(-np.mean(np.log((c[Y] + 1) / (len(Y) + V))), rel=1e-12)


# --- properties of both models, on names and on the tiny corpus --------------

@pytest.fixture(scope="module")
def names():
    return load_splits(NAMES, block_size=7)


def models(n, X, Y, V):
    return [KneserNey(n).fit(X, Y, V), AddK(n, k=0.05).fit(X, Y, V)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_every_distribution_sums_to_one_and_is_positive_on_names(n, names):
    V = len(names.vocab)
    Xu, _ = build_dataset(["zxqjvk", "qqqqqqqq", "xyzzyx"], names.vocab, 7)  # contexts names lack
    Xq = np.concatenate([names.dev[0][::50], Xu])
    for model in models(n, *names.train, V):
        if n >= 4:  # some of the asked contexts are new to the model at its highest order
            assert (model.ctx.ids(model._context(Xu))[-1] < 0).any()
        P = model.probs(Xq)
        assert P.shape == (len(Xq), V) and P.dtype == np.float64
        np.testing.assert_allclose(P.sum(axis=1), 1, rtol=0, atol=1e-12)
        assert (P > 0).all()


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_every_distribution_sums_to_one_and_is_positive_on_a_tiny_corpus(n):
    vocab = build_vocab(TINY + UNSEEN + ["d"])  # "d" never occurs in training
    X, Y = dataset(TINY, vocab, 6)
    Xq, _ = dataset(TINY + UNSEEN, vocab, 6)
    for model in models(n, X, Y, len(vocab)):
        P = model.probs(Xq)
        np.testing.assert_allclose(P.sum(axis=1), 1, rtol=0, atol=1e-12)
        assert (P > 0).all()


@pytest.mark.parametrize("n", [1, 3, 6])
def test_target_probs_nll_and_next_probs_agree_with_probs(n, names):
    Xq, Yq = names.dev[0][::20], names.dev[1][::20]
    for model in models(n, *names.train, len(names.vocab)):
        P = model.probs(Xq)
        p = model.target_probs(Xq, Yq)
        np.testing.assert_allclose(p, P[np.arange(len(Yq)), Yq], rtol=1e-12)
        assert model.nll(Xq, Yq) == pytest.approx(-np.mean(np.log(p)), rel=1e-12)
        np.testing.assert_allclose(model.next_probs(Xq), P, rtol=1e-12)
        hot = P ** 2 / (P ** 2).sum(axis=1, keepdims=True)  # temperature 1/2: p ** 2, renormalised
        np.testing.assert_allclose(model.next_probs(Xq, temperature=0.5), hot, rtol=1e-9)


def test_probs_in_small_chunks_equal_probs_at_once(names, monkeypatch):
    model = KneserNey(4).fit(*names.train, len(names.vocab))
    Xq = names.dev[0][:500]
    whole = model.probs(Xq)
    monkeypatch.setattr("mlp_lm.counting.CHUNK_ELEMENTS", 7 * len(names.vocab))  # 7 rows a chunk
    np.testing.assert_array_equal(model.probs(Xq), whole)


def test_longer_contexts_use_their_last_n_minus_1_columns(names):
    X7, Y = names.train  # (N, 7)
    V = len(names.vocab)
    for cls in (KneserNey, AddK):
        wide = cls(3).fit(X7, Y, V)
        narrow = cls(3).fit(X7[:, -2:], Y, V)
        Xq = names.dev[0][:300]
        np.testing.assert_array_equal(wide.probs(Xq), narrow.probs(Xq[:, -2:]))
        np.testing.assert_array_equal(narrow.target_probs(Xq, names.dev[1][:300]),
                                      narrow.target_probs(Xq[:, -2:], names.dev[1][:300]))
        with pytest.raises(ValueError, match="contexts of shape"):
            narrow.probs(Xq[:, -1:])
        with pytest.raises(ValueError, match="contexts of shape"):
            cls(9).fit(X7, Y, V)


def test_bad_arguments_are_value_errors(names):
    X, Y = names.train
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            KneserNey(bad)
    with pytest.raises(ValueError, match="outside"):
        KneserNey(2).fit(X, Y, 5)  # symbols up to 26 with a vocabulary of 5
    with pytest.raises(ValueError, match="fit"):
        KneserNey(2).probs(X[:3])
    with pytest.raises(ValueError):
        AddK(2, k=0)
    kn = KneserNey(2).fit(X, Y, 27)
    for t in (-1.0, float("nan"), True, "1", None):  # True would be 1, as sampling.generate refuses it
        with pytest.raises(ValueError, match="temperature must be 0 or more"):
            kn.next_probs(X[:3], t)
    # 0 is greedy, as for the network (sampling.generate documents 0 for any model)
    greedy = kn.next_probs(X[:3], 0.0)
    np.testing.assert_array_equal(greedy, np.eye(27)[kn.probs(X[:3]).argmax(axis=1)])
    with pytest.raises(ValueError, match="k must be positive and finite"):
        AddK(2, k=float("inf"))  # inf / inf: every probability NaN
    narrow, wide = AddK(2, k=np.uint8(200)).fit(X, Y, 27), AddK(2, k=200).fit(X, Y, 27)  # k * V wrapped in uint8,
    assert narrow.nll(X[:50], Y[:50]) == wide.nll(X[:50], Y[:50])  # a loss far too good (from a hostile pass)
    for k in ("1", None, Fraction(1, 2)):  # were Python's "'<' not supported between instances"; a Fraction
        # made arrays of Python objects, which np.log refused in the loss
        with pytest.raises(ValueError, match="k must be positive and finite"):
            AddK(2, k=k)
    with pytest.raises(ValueError, match="grid of k"):
        choose_k(X, Y, X, Y, 2, 27, grid=(-1.0, 0.5))
    with pytest.raises(ValueError, match="vocabulary size must be a whole number"):
        KneserNey(2).fit(X, Y, 27.5)
    with pytest.raises(ValueError, match="integer symbol indices"):
        kn.target_probs(X[:2], np.array([1.9, 2.7]))
    with pytest.raises(ValueError, match="integer symbol indices"):
        kn.probs(X[:2].astype(float))
    with pytest.raises(ValueError, match="no examples"):
        kn.nll(X[:0], Y[:0])


# --- add-k ------------------------------------------------------------------

def test_add_k_by_its_formula():
    vocab = build_vocab(TINY + ["d"])
    V = len(vocab)
    X, Y = dataset(TINY, vocab, 2)
    pairs = Counter(zip(map(tuple, X.tolist()), Y.tolist()))
    ctx = Counter(map(tuple, X.tolist()))
    model = AddK(3, k=0.3).fit(X, Y, V)
    Xq, _ = dataset(TINY + UNSEEN, vocab, 2)
    want = [[(pairs[(tuple(h), w)] + 0.3) / (ctx[tuple(h)] + 0.3 * V) for w in range(V)] for h in Xq.tolist()]
    np.testing.assert_allclose(model.probs(Xq), want, rtol=1e-13)


def test_add_k_with_a_huge_k_is_nearly_uniform(names):
    V = len(names.vocab)
    P = AddK(3, k=1e9).fit(*names.train, V).probs(names.dev[0][:200])
    np.testing.assert_allclose(P, 1 / V, rtol=1e-4)
    assert np.ptp(AddK(3, k=1e-3).fit(*names.train, V).probs(names.dev[0][:200])) > 0.5  # a small k is not


def test_choose_k_picks_the_grid_value_with_the_lowest_dev_loss(names):
    V, grid = len(names.vocab), (1e-3, 1e-2, 0.1, 1.0, 10.0)
    k, model = choose_k(*names.train, *names.dev, 4, V, grid=grid)
    losses = [AddK(4, k=g).fit(*names.train, V).nll(*names.dev) for g in grid]
    assert k == grid[int(np.argmin(losses))] and model.k == k
    assert model.nll(*names.dev) == pytest.approx(min(losses), rel=1e-12)
    assert len(set(np.round(losses, 6))) == len(grid)  # k matters, so the choice means something


# --- the driver: python -m mlp_lm.ngram --------------------------------------

def test_cli_prints_and_writes_the_models_losses(tmp_path, names):
    out = tmp_path / "out.json"
    proc = run_cli("mlp_lm.ngram", "--n", 3, "--smoothing", "kn", "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) == {"data", "vocab_size", "n", "smoothing", "train_loss", "dev_loss", "test_loss",
                           "train_perplexity", "train_bpc", "dev_perplexity", "dev_bpc", "test_perplexity", "test_bpc",
                           "discounts", "seconds", "samples", "samples_ended", "samples_in_train",
                           "samples_in_dev_test", "samples_new", "written_by"}
    assert result["vocab_size"] == 27 and result["data"].endswith("names.txt")
    counted = (result["samples_in_train"], result["samples_in_dev_test"], result["samples_new"])
    assert f"({counted[0]} in the training set, {counted[1]} in dev/test, {counted[2]} new" in proc.stdout
    model = KneserNey(3).fit(*names.train, len(names.vocab))  # the same split, counted here
    for name in ("train", "dev", "test"):
        assert result[f"{name}_loss"] == pytest.approx(model.nll(*getattr(names, name)), rel=1e-12)
    assert result["dev_perplexity"] == pytest.approx(math.exp(result["dev_loss"]), rel=1e-12)
    assert result["test_bpc"] == pytest.approx(result["test_loss"] / math.log(2), rel=1e-12)
    dev_line = next(line for line in proc.stdout.splitlines() if line.startswith("dev loss"))
    assert f"{result['dev_loss']:.4f} nats" in dev_line
    assert f"perplexity {result['dev_perplexity']:.2f}" in dev_line and "bits/char" in dev_line
    assert [d["order"] for d in result["discounts"]] == [1, 2, 3]
    np.testing.assert_allclose([[d["D1"], d["D2"], d["D3+"]] for d in result["discounts"]], model.discounts)
    assert len(result["samples"]) == 10 and all(set(s) <= set(names.vocab.itos[1:]) for s in result["samples"])


def test_cli_add_k_reports_its_k_and_a_unigram_works(tmp_path, names):
    out = tmp_path / "addk.json"
    proc = run_cli("mlp_lm.ngram", "--n", 2, "--smoothing", "add-k", "--samples", 0, "--json", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert "discounts" not in result and result["samples"] == []
    k, model = choose_k(*names.train, *names.dev, 2, len(names.vocab))
    assert result["k"] == k and f"k = {k:.4g}" in proc.stdout
    assert result["test_loss"] == pytest.approx(model.nll(*names.test), rel=1e-12)
    proc = run_cli("mlp_lm.ngram", "--n", 1, "--smoothing", "kn", "--samples", 3, "--json", out)
    assert proc.returncode == 0, proc.stderr
    unigram = KneserNey(1).fit(*names.train, len(names.vocab))
    assert json.loads(out.read_text())["dev_loss"] == pytest.approx(unigram.nll(*names.dev), rel=1e-12)


@pytest.mark.parametrize("flags,words", [
    (["--n", "0", "--smoothing", "kn"], ["--n", "from 1 to"]),
    (["--n", "-1", "--smoothing", "kn"], ["--n"]),
    (["--n", str(10 ** 6), "--smoothing", "kn"], ["--n", "from 1 to"]),
    (["--n", "three", "--smoothing", "kn"], ["--n"]),
    (["--n", "3", "--smoothing", "witten-bell"], ["--smoothing", "witten-bell"]),
    (["--n", "3"], ["--smoothing", "required"]),
    (["--n", "3", "--smoothing", "kn", "--samples", "-2"], ["--samples"]),
    (["--n", "3", "--smoothing", "kn", "--data", "no/such/file.txt"], ["not found"]),
    (["--n", "3", "--smoothing", "kn", "--data", "EMPTY"], ["no items"]),
    (["--n", "3", "--smoothing", "kn", "--data", "FEW", "--json", "NODIR"], ["--json", "cannot write"]),
])
def test_cli_bad_input_is_one_line_and_exit_2(flags, words, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "few.txt").write_text("anna\nbob\ncarl\ndora\nemil\nfrida\ngreta\n")
    files = {"EMPTY": tmp_path / "empty.txt", "FEW": tmp_path / "few.txt", "NODIR": tmp_path / "no" / "out.json"}
    proc = run_cli("mlp_lm.ngram", *[files.get(f, f) for f in flags])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_orders_longer_than_any_item_leave_empty_tables_that_still_work(tmp_path):
    # From n = 18 on, every n-gram of a name starts with two or more boundaries, which the
    # padding rule leaves out: the top orders are empty and the model falls through to lower ones.
    from mlp_lm.data import load_splits
    data = tmp_path / "six.txt"
    data.write_text("ab\nba\naa\nbb\nab\nba\n")
    for path, n in ((data, 5), (NAMES, 18)):
        splits = load_splits(path, n - 1)
        kn = KneserNey(n).fit(*splits.train, len(splits.vocab))
        p = kn.probs(splits.dev[0])
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(kn.target_probs(*splits.dev), p[np.arange(len(p)), splits.dev[1]], rtol=1e-12)


def test_samples_cut_off_at_twice_the_longest_item_are_marked_and_not_counted(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "long.txt"  # items of 100 letters: samples may grow to 200, and some do not end by then
    data.write_text("\n".join("".join(rng.choice(list("abc"), 100)) for _ in range(60)) + "\n")
    out = tmp_path / "s.json"
    proc = run_cli("mlp_lm.ngram", "--n", 3, "--smoothing", "kn", "--data", data, "--json", out, "--samples", 40)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    cut = result["samples_ended"].count(False)
    assert cut > 0 and all(len(s) == 200 for s, e in zip(result["samples"], result["samples_ended"]) if not e)
    assert max(len(s) for s, e in zip(result["samples"], result["samples_ended"]) if e) > 64  # past the old limit
    line = next(line for line in proc.stdout.splitlines() if line.startswith("samples"))
    assert line.split(": ", 1)[1].count("…") == cut and f"{cut} cut off at 200 symbols, marked …" in line
    counts = [int(w) for w in line.split(":")[0].replace("(", " ").split() if w.isdigit()]
    empty = sum(1 for s, e in zip(result["samples"], result["samples_ended"]) if e and not s)
    assert sum(counts[:3]) == 40 - cut - empty  # in train, in dev/test, new: the samples that ended, with a name


def test_add_k_says_when_its_k_is_at_an_end_of_the_grid(tmp_path):
    words = tmp_path / "same.txt"
    words.write_text("abc\n" * 300)  # every item alike: the less smoothing the better, past the grid's smallest k
    proc = run_cli("mlp_lm.ngram", "--data", words, "--n", 3, "--smoothing", "add-k")
    assert proc.returncode == 0, proc.stderr
    assert "k = 0.001 (" in proc.stdout and "at an end of them, so a k beyond it may do better" in proc.stdout
    proc = run_cli("mlp_lm.ngram", "--n", 2, "--smoothing", "add-k")
    assert proc.returncode == 0 and "at an end" not in proc.stdout


def test_a_tiny_temperature_is_greedy_not_nan(names):
    X, Y = names.train
    kn = KneserNey(3).fit(X, Y, 27)
    p = kn.next_probs(X[:5], 1e-310)
    assert np.all(np.isfinite(p)) and np.array_equal(p, kn.next_probs(X[:5], 0.0))


def test_samples_of_a_list_of_very_long_items_are_bounded_before_any_work(tmp_path, capsys):
    # From a review: with samples as long as twice the longest item, 200 of a list of 50,000-letter items took 51 s
    # and printed one 5 MB line, and 100,000 would have taken hours
    from mlp_lm import cli, ngram
    rng = np.random.default_rng(0)
    data = tmp_path / "huge.txt"
    data.write_text("\n".join("".join(rng.choice(list("ab"), 50_000)) for _ in range(8)) + "\n")
    with pytest.raises(cli.UsageError, match=r"--samples 200 of up to 100,000 symbols each .* use at most 64 here$"):
        ngram.main(["--data", str(data), "--n", "2", "--smoothing", "kn", "--samples", "200"])
    assert capsys.readouterr().out.count("\n") <= 1  # the data line at most: nothing counted
    from mlp_lm.sampling import sample_length
    assert ngram.MAX_SAMPLE_SYMBOLS // sample_length(15) == ngram.MAX_SAMPLES  # names (15 at most): as before


@pytest.mark.parametrize("make", [lambda: KneserNey(4), lambda: AddK(3, k=0.5)])
def test_targets_are_looked_up_a_chunk_at_a_time_with_the_same_numbers(make, monkeypatch):
    # A million made-up names' 6-gram took 900 MB more to score its 6.1 million training examples at once (1.78 GB
    # at its peak); in chunks of counting.TARGET_ROWS rows, 1.06 GB (1.03 with the ids let go after fit), and the
    # same losses to the last digit
    splits = load_splits(NAMES, 3)
    m = make().fit(*splits.train, len(splits.vocab))
    assert m.ctx.train_ids is None  # the training rows' context ids, (N,) an order, serve the counting only
    whole_p, whole_nll = m.target_probs(*splits.dev), m.nll(*splits.dev)
    monkeypatch.setattr(counting, "TARGET_ROWS", 1000)  # 23 chunks of dev, the last a short one
    np.testing.assert_array_equal(m.target_probs(*splits.dev), whole_p)
    assert m.nll(*splits.dev) == pytest.approx(whole_nll, rel=1e-13)
    assert whole_nll == pytest.approx(-np.mean(np.log(whole_p)), rel=1e-13)
