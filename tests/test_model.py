"""The whole model: gradients of every parameter and intermediate, and sanity checks."""
import math
import re

import numpy as np
import pytest

from mlp_lm import model
from mlp_lm.finitediff import TOLERANCE, assert_close, compare, directional_grad
from mlp_lm.gradcheck import check_model, random_params

from .conftest import NAMES

SHAPES = [  # (V, T, E, H, B)
    (27, 3, 2, 6, 8),
    (5, 1, 3, 4, 6),  # block size 1: a bigram-like context
    (11, 4, 2, 5, 7),  # a vocabulary that is not 27
    (3, 2, 1, 3, 9),  # more examples than symbols: indices repeat
]


@pytest.mark.parametrize("V,T,E,H,B", SHAPES)
def test_every_gradient_matches_finite_differences(V, T, E, H, B):
    params = random_params(V, T, E, H, seed=V * 100 + T)
    rng = np.random.default_rng(V + T)
    X = rng.integers(0, V, size=(B, T))
    Y = rng.integers(0, V, size=B)
    rows = check_model(params, X, Y)
    assert [r.name for r in rows] == ["dC", "dW1", "db1", "dW2", "db2",
                                      "dlogits", "dh", "dhpreact", "dembcat", "demb"]
    for r in rows:
        assert r.scale > 0
        assert_close(r)


def test_gradients_at_lecture_size_on_sampled_coordinates_and_directions():
    # The real shapes (V=27, T=3, E=10, H=200) are too many coordinates to check all;
    # check 25 random entries of each tensor and 3 random directions through all of them.
    params = random_params(27, 3, 10, 200, seed=7)
    rng = np.random.default_rng(7)
    X = rng.integers(0, 27, size=(32, 3))
    Y = rng.integers(0, 27, size=32)
    for r in check_model(params, X, Y, max_coords=25, seed=7):
        assert_close(r)
    _, grads = model.loss_and_grads(params, X, Y)
    for name, p in params.items():
        for _ in range(3):
            v = rng.standard_normal(p.shape)

            def f(q, name=name):
                return model.loss_and_grads({**params, name: q}, X, Y)[0]

            num = directional_grad(f, p, v)
            ana = float(np.sum(grads[name] * v))
            # |<g, v>| is at most |g| |v|, so that is the scale the difference is judged against.
            scale = np.linalg.norm(grads[name]) * np.linalg.norm(v)
            assert abs(ana - num) <= TOLERANCE * scale, (name, ana, num)


def test_loss_and_grads_contract():
    params = model.init_params(27, 3, 10, 200, seed=0)
    before = {k: v.copy() for k, v in params.items()}
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 27, (32, 3)), rng.integers(0, 27, 32)
    loss, grads = model.loss_and_grads(params, X, Y)
    assert isinstance(loss, float)
    assert set(grads) == set(params) == {"C", "W1", "b1", "W2", "b2"}
    shapes = {"C": (27, 10), "W1": (30, 200), "b1": (200,), "W2": (200, 27), "b2": (27,)}
    for k in params:
        assert params[k].shape == shapes[k]
        assert grads[k].shape == params[k].shape and grads[k].dtype == params[k].dtype == np.float32
        np.testing.assert_array_equal(params[k], before[k])
        assert not np.shares_memory(grads[k], params[k])


@pytest.mark.parametrize("init", ["random", "lecture"])
def test_float32_gradients_agree_with_float64(init):
    # docs/gradcheck.md: float32 against float64 needs a tolerance of about 1e-4, the lecture's init
    # (logits in the tens) the worst case; its B=128, T=6, E=32, H=1024 measurement is 1.2e-5 at most
    p64 = (random_params(27, 3, 10, 50, seed=3) if init == "random"
           else model.init_params(27, 6, 32, 1024, seed=3, init="lecture", dtype=np.float64))
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    rng = np.random.default_rng(3)
    B, T = (32, 3) if init == "random" else (128, 6)
    X, Y = rng.integers(0, 27, (B, T)), rng.integers(0, 27, B)
    l64, g64, i64 = model.loss_and_grads(p64, X, Y, return_intermediates=True)
    l32, g32, i32 = model.loss_and_grads(p32, X, Y, return_intermediates=True)
    assert l32 == pytest.approx(l64, rel=1e-5)
    ratios = [compare(k, g64[k], g32[k]).ratio for k in g64] + [compare(k, i64[k], i32[k]).ratio for k in i64]
    assert max(ratios) < 1e-4
    if init == "lecture":  # and the table's point: this init's rounding is past what a tolerance of 1e-6 allows
        assert max(ratios) > 1e-6


def test_parameter_count():
    assert model.num_params(model.init_params(27, 3, 10, 200)) == 11897
    V, T, E, H = 11, 4, 5, 17
    assert model.num_params(model.init_params(V, T, E, H)) == V * E + T * E * H + H + H * V + V


@pytest.mark.parametrize("V", [27, 11])
def test_scaled_init_starts_at_uniform_loss(V):
    params = model.init_params(V, 3, 10, 200, seed=1, init="scaled")
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, V, (2000, 3)), rng.integers(0, V, 2000)
    assert abs(model.split_loss(params, X, Y) - np.log(V)) < 0.05


def test_lecture_init_starts_confidently_wrong():
    params = model.init_params(27, 3, 10, 200, seed=1, init="lecture")
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 27, (2000, 3)), rng.integers(0, 27, 2000)
    assert model.split_loss(params, X, Y) > np.log(27) + 5


def test_init_rejects_bad_arguments():
    with pytest.raises(ValueError, match="init"):
        model.init_params(27, 3, 10, 200, init="xavier")
    with pytest.raises(ValueError, match="n_hidden"):
        model.init_params(27, 3, 10, 0)


def test_init_is_seeded():
    a = model.init_params(27, 3, 10, 20, seed=5)
    b = model.init_params(27, 3, 10, 20, seed=5)
    c = model.init_params(27, 3, 10, 20, seed=6)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["C"], c["C"])


def test_overfits_a_single_batch():
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 27, (32, 3)), rng.integers(0, 27, 32)
    params = model.init_params(27, 3, 10, 200, seed=0)
    first = None
    for _ in range(300):
        loss, grads = model.loss_and_grads(params, X, Y)
        first = loss if first is None else first
        for k in params:
            params[k] -= 0.5 * grads[k]
    assert first > 3.0
    assert model.split_loss(params, X, Y) < 0.5


def test_split_loss_in_chunks_equals_one_batch():
    params = random_params(27, 3, 10, 30, seed=4)
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, 27, (1000, 3)), rng.integers(0, 27, 1000)
    whole, _ = model.loss_and_grads(params, X, Y)
    assert model.split_loss(params, X, Y, chunk_size=77) == pytest.approx(whole, rel=1e-12)


def test_next_probs():
    params = random_params(27, 3, 10, 30, seed=4)
    X = np.array([[0, 0, 0], [1, 2, 3]])
    p = model.next_probs(params, X)
    assert p.shape == (2, 27)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    cold = model.next_probs(params, X, temperature=0.01)
    np.testing.assert_array_equal(cold.argmax(axis=1), p.argmax(axis=1))
    assert np.all(cold.max(axis=1) > p.max(axis=1))


def test_evaluation_chunks_shrink_with_the_vocabulary():
    small = model.rows_per_chunk(model.init_params(27, 3, 10, 200))
    big = model.rows_per_chunk(model.init_params(20000, 3, 10, 200))
    assert small == model.EVAL_ROWS and big < 500  # a fixed memory budget, within a number of rows that stays fast
    assert big * 8 * (5 * 20000 + 2 * 200 + 30) <= model.EVAL_BYTES


def test_evaluation_chunks_are_shared_out_evenly(monkeypatch):
    # From a differential test: 2,049 examples went in chunks of 2,048 and 1, and BLAS rounds a product of one
    # row (or a few) by other kernels: a float32 model's loss moved by 5e-11 against the same examples in one chunk
    params = {k: v.astype(np.float32) for k, v in random_params(27, 3, 10, 200, seed=4).items()}
    most = model.rows_per_chunk(params)
    assert [model.chunk_rows(params, n) for n in (1, most, most + 1, 2 * most + 1, 10 * most)] == \
        [most, most, most // 2 + 1, 2 * most // 3 + 1, most]
    X, Y = np.random.default_rng(4).integers(0, 27, (most + 1, 3)), np.random.default_rng(5).integers(0, 27, most + 1)
    whole = model.split_loss(params, X, Y, chunk_size=most + 1)
    logits, rows = model.logits, []
    monkeypatch.setattr(model, "logits", lambda p, x: rows.append(len(x)) or logits(p, x))
    loss = model.split_loss(params, X, Y)
    assert rows == [most // 2 + 1, most // 2]  # what split_loss evaluates, chunk by chunk
    # Where BLAS rounds a row's logits the same in a product of half the rows as of all of them (OpenBLAS's
    # SkylakeX kernels), the loss is the one chunk's to float64 summation; its Haswell kernels (a machine of ours
    # set OPENBLAS_CORETYPE=Haswell) round them by how the rows are blocked, 1e-9 apart whatever the chunks
    if np.array_equal(logits(params, X[:most // 2 + 1]), logits(params, X)[:most // 2 + 1]):
        assert loss == pytest.approx(whole, rel=1e-13)
    else:
        assert loss == pytest.approx(whole, rel=1e-7)  # float32's own rounding of the logits


def test_the_library_refuses_inputs_numpy_would_silently_misread():
    from mlp_lm.data import Vocab
    from mlp_lm.sampling import generate
    params = model.init_params(5, 3, 2, 4, seed=0, dtype=np.float64)
    X, Y = np.zeros((4, 3), dtype=np.int64), np.array([1, 2, 3, 4])
    assert np.isfinite(model.split_loss(params, X, Y))
    for bad_X, bad_Y in ((X, Y - 2), (X - 1, Y), (X, Y + 1)):  # -1 would be read as the last symbol
        with pytest.raises(ValueError, match="outside 0..4"):
            model.split_loss(params, bad_X, bad_Y)
    with pytest.raises(ValueError, match=r"Y \(N,\)"):
        model.split_loss(params, X, Y[:, None])  # broadcast against (B,), it gave a loss of 7e4
    for t in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            model.next_probs(params, X, temperature=t)
    next_probs = lambda X, temperature: model.next_probs(params, X, temperature)  # noqa: E731
    rng = np.random.default_rng(0)
    for kwargs, word in (({"top_k": 0}, "top_k"), ({"top_k": float("nan")}, "top_k"), ({"top_k": 1.5}, "top_k"),
                         ({"max_length": -5}, "max_length"), ({"temperature": -1.0}, "temperature")):
        with pytest.raises(ValueError, match=word):
            generate(next_probs, Vocab(".abcd"), 3, 2, rng, **kwargs)


def test_a_second_hostile_round_on_the_library_its_smaller_findings(tmp_path):
    from mlp_lm import checkpoint, data, loop, optim
    from mlp_lm.config import Config
    from mlp_lm.sampling import generate
    with pytest.raises(TypeError, match="not a set"):
        data.split_items({f"n{i}" for i in range(10)})  # the split changed with PYTHONHASHSEED
    with pytest.raises(TypeError, match="direct is True or False"):
        model.init_params(5, 3, 2, 4, direct="no")  # added Wd
    params = model.init_params(5, 3, 2, 4, seed=0)
    vocab = data.Vocab(".abcd")
    with pytest.raises(ValueError, match="'wd' is not a parameter"):
        checkpoint.save(tmp_path / "m.npz", dict(params, wd=np.zeros((6, 5), np.float32)), vocab, {"block_size": 3})
    assert not (tmp_path / "m.npz").exists()  # "wd" was left out of the file in silence
    with pytest.raises(TypeError, match="numpy Generator"):
        generate(lambda X, t: np.full((len(X), 5), 0.2), vocab, 3, 2, 0)  # an AttributeError at the first draw
    with pytest.raises(ValueError, match="decay_rate must be 0 or more"):
        optim.learning_rate("inverse", 0.1, 10, 100, decay_rate=-0.2)  # a negative rate, then 1/0
    with pytest.raises(ValueError, match="min_lr must be from 0 to lr"):
        optim.learning_rate("cosine", 0.1, 10, 100, min_lr=0.5)  # a rate that rose
    splits = data.load_splits(str(NAMES), 3)
    with pytest.raises(ValueError, match="for 28 symbols, and the data's vocabulary has 27"):
        loop.train(Config(steps=5, n_embd=2, n_hidden=4, eval_every=0), splits,
                   model.init_params(28, 3, 2, 4))  # trained, then its save was refused


def test_more_library_inputs_that_would_be_misread_are_refused():
    # From a round of hostile use of the Python API: each of these gave an answer, or a numpy
    # complaint about something else, before it was refused.
    import functools

    from mlp_lm import data, metrics, mixture, wordfile
    from mlp_lm.sampling import generate
    params = model.init_params(5, 3, 2, 4, seed=0, dtype=np.float64)
    X, Y = np.zeros((4, 3), dtype=np.int64), np.array([1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"contexts \(B, 3\)"):
        model.logits(params, np.zeros((4, 2), dtype=np.int64))  # was: matmul's "core dimension"
    for bad_Y in (Y[:, None], np.array([-1, 2, 3, 4]), Y[:3]):  # each gave a loss
        with pytest.raises(ValueError):
            mixture.evaluate(params, {"dev": (X, bad_Y)})
    with pytest.raises(ValueError, match="chunk_size"):
        model.split_loss(params, X, Y, chunk_size=-1)  # no rows evaluated: a loss of 0.0
    with pytest.raises(ValueError, match="train="):
        mixture.evaluate(params, {"dev": (X, Y)}, n=2)
    with pytest.raises(ValueError, match="float32 or float64"):
        model.init_params(5, 3, 2, 4, dtype=np.int32)  # weights truncated to zeros
    with pytest.raises(ValueError, match="positive integer"):
        model.init_params(True, 3, 2, 4)
    assert np.isnan(metrics.perplexity(float("nan")))  # was inf
    # a hostile tester's checkpoint (W2 times 1000) evaluated to 870 nats, shown as "perplexity inf"
    assert metrics.describe(870.5479) == "870.5479 nats (perplexity about 1e378, 1255.935 bits/char)"
    assert metrics.describe(700.0) == "700.0000 nats (perplexity 1.01e+304, 1009.887 bits/char)"
    assert metrics.describe(math.inf) == "inf nats (perplexity inf, inf bits/char)"
    vocab = data.Vocab(".abcd")
    with pytest.raises(ValueError, match="0..4"):
        vocab.decode([1, -1])  # -1 read as the last symbol
    with pytest.raises(wordfile.DataError, match="boundary"):
        data.build_dataset(["a.b"], vocab, 2)  # the '.' would end the item in the middle
    with pytest.raises(TypeError, match="not one string"):
        data.build_dataset("ab", vocab, 2)
    with pytest.raises(ValueError, match="block_size"):
        data.build_dataset(["ab"], vocab, 2.0)
    rng = np.random.default_rng(0)
    probs = functools.partial(model.next_probs, params)
    with pytest.raises(ValueError, match="not 3 distributions over the vocabulary's 3 symbols"):
        generate(probs, data.Vocab(".ab"), 3, 3, rng)  # a 5-symbol model: its indices were clamped
    with pytest.raises(ValueError, match="not 2 distributions"):
        generate(lambda X, t: np.full((len(X), 5), np.nan), vocab, 3, 2, rng)  # gave empty samples
    for kwargs, word in (({"n": -1}, "n must"), ({"rows": -1}, "rows must"), ({"temperature": True}, "temperature"),
                         ({"temperature": "0.5"}, "temperature must be 0 or more, got '0.5'"), ({"top_k": True}, "top_k"), ({"prefix": "abcd", "max_length": 3}, "leaving none")):
        with pytest.raises(ValueError, match=word):
            generate(probs, vocab, 3, **{"n": 2, "rng": rng, **kwargs})


def test_mixture_names_the_set_and_checks_its_chunk_size():
    from mlp_lm import mixture
    params = model.init_params(5, 3, 2, 4, seed=0, dtype=np.float64)
    X, Y = np.zeros((4, 3), dtype=np.int64), np.array([1, 2, 3, 4])
    with pytest.raises(ValueError, match="^test: .*outside 0..4"):
        mixture.evaluate(params, {"dev": (X, Y), "test": (X, Y + 1)})
    with pytest.raises(ValueError, match="chunk_size"):
        mixture.mlp_log_probs(params, X, chunk_size=0)


def test_a_notebook_s_odd_but_plausible_choices_are_taken_or_refused_clearly(tmp_path):
    # From a third hostile round of library use.
    from mlp_lm import checkpoint, data, layers, loop, mixture, onehot, wordfile
    from mlp_lm.config import Config
    from mlp_lm.counting import AddK
    from mlp_lm.sampling import generate
    from mlp_lm.trainer import Trainer
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "ella"] * 3
    vocab = data.build_vocab(words)
    tr, dv, te = data.split_items(words)
    splits = data.Splits(vocab, *(data.build_dataset(s, vocab, 3) for s in (tr, dv, te)), (tr, dv, te), "")
    V = len(vocab)
    # numpy scalars from np.arange and friends: the Python values they are (np.int16 overflowed)
    cfg = Config(batch_size=np.int16(32), n_embd=np.int8(10), n_hidden=np.int8(100), steps=np.int64(20),
                 eval_every=0, dtype=np.float32)
    trainer, losses, _, _ = loop.train(cfg, splits, model.init_params(V, 3, np.int8(10), np.int8(100)))
    assert len(losses) == 20 and type(trainer.cfg.batch_size) is int and trainer.cfg.dtype == "float32"
    mixed = dict(model.init_params(V, 3, 10, 100), W1=model.init_params(V, 3, 10, 100, dtype=np.float64)["W1"])
    with pytest.raises(ValueError, match="parameter W1 is float64 .* not the config's float32"):  # not blamed on dev
        loop.train(Config(n_hidden=100, steps=20, eval_every=10), splits, mixed)
    checkpoint.save(tmp_path / "m.npz", trainer.params, vocab, vars(trainer.cfg))  # saves as JSON
    # a dev set of another context length, refused before training, not 2,000 steps in
    bad = data.Splits(vocab, splits.train, data.build_dataset(dv, vocab, 4), splits.test, (tr, dv, te), "")
    with pytest.raises(ValueError, match="^dev: "):
        loop.train(Config(steps=20, eval_every=10, n_hidden=100), bad, model.init_params(V, 3, 10, 100))
    nan_params = model.init_params(V, 3, 10, 100)
    nan_params["C"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # was "diverged at step 1 ... the learning rate"
        Trainer(Config(n_hidden=100), nan_params, *splits.train)
    with pytest.raises(ValueError, match="threads"):
        Trainer(Config(n_hidden=100), model.init_params(V, 3, 10, 100), *splits.train, threads=0)
    with pytest.raises(wordfile.DataError, match="line break"):
        data.build_vocab(["isa\nbella", "emma"])  # it trained, then could not be saved
    with pytest.raises(TypeError, match="fixed order"):
        data.build_dataset(set(words), vocab, 3)  # the order of a set changes from run to run
    p = model.init_params(V, 3, 10, 20)
    other = model.init_params(V + 3, 3, 10, 20)
    with pytest.raises(ValueError, match="do not fit together"):
        model.split_loss(dict(p, W2=other["W2"], b2=other["b2"]), *splits.dev)  # was a (V+3)-way softmax
    assert np.isfinite(mixture.evaluate(p, {"dev": tuple(a.tolist() for a in splits.dev)})["mlp"]["dev_loss"])
    with pytest.raises(ValueError, match="pickled"):
        checkpoint.save(tmp_path / "m2.npz", p, vocab, {"block_size": 3}, state={"x": {"a": 1}})
    with pytest.raises(TypeError, match=r"config must be a dict of the run's settings, such as dataclasses.asdict\(cfg\), got Config"):
        checkpoint.save(tmp_path / "m3.npz", p, vocab, Config(block_size=3))  # was "'Config' object is not a mapping"
    assert not (tmp_path / "m3.npz").exists()
    with pytest.raises(ValueError, match="k must be positive"):
        AddK(3, True)
    with pytest.raises(ValueError, match="floating point"):
        layers.dropout_mask((2, 3), 0.3, np.random.default_rng(0), np.int64)  # 1/(1-p) truncated to 1
    with pytest.raises(ValueError, match="dropout mask"):
        layers.dropout_forward(np.ones((2, 3)), np.ones((4, 2, 3)))  # broadcast the output to (4, 2, 3)
    with pytest.raises(ValueError, match="V must be"):
        onehot.one_hot([0, 1], 100.5, np.float64)
    probs = lambda X, t: model.next_probs(p, X, t)  # noqa: E731
    with pytest.raises(ValueError, match="block_size"):
        generate(probs, vocab, -1, 2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="data.Vocab"):
        generate(probs, vocab.itos, 3, 2, np.random.default_rng(0))


def test_the_notebook_checks_at_their_edges(tmp_path):
    # From the review of the third round's fixes.
    import types
    from pathlib import Path

    from mlp_lm import data, loop
    from mlp_lm.config import Config
    from mlp_lm.counting import AddK
    from mlp_lm.sampling import generate
    from mlp_lm.trainer import Trainer
    assert model.init_params(27, np.int8(3), np.int8(100), np.int8(10))["W1"].shape == (300, 10)  # not (44, 10)
    p = model.init_params(5, 3, 2, 4)
    samples = generate(lambda X, t: model.next_probs(p, X, t), data.Vocab(".abcd"), np.int8(3), 2,
                       np.random.default_rng(0))
    assert len(samples) == 2
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 3
    vocab = data.build_vocab(words)
    train_set = data.build_dataset(words, vocab, 3)
    no_dev = data.Splits(vocab, train_set, (np.zeros((0, 3), np.int64), np.zeros(0, np.int64)), train_set,
                         (words, [], words), "")
    params = model.init_params(len(vocab), 3, 10, 8)
    assert len(loop.train(Config(steps=5, eval_every=0, n_hidden=8), no_dev, params)[1]) == 5  # dev never read
    Trainer(Config(n_hidden=8), params, *train_set, threads=np.int64(1))  # threadpoolctl wants a Python int
    for cfg, words_ in ((Config(n_hidden=8, dtype=None), "dtype is None"),
                        (Config(n_hidden=8, data=Path("w.txt")), "not a path as text")):
        with pytest.raises(ValueError, match=words_):
            Trainer(cfg, params, *train_set)
    with pytest.raises(TypeError, match="config.Config"):
        Trainer(types.SimpleNamespace(), params, *train_set)
    with pytest.raises(ValueError, match="k must be positive"):
        AddK(3, np.True_)


def test_what_another_implementation_would_hand_over_wrongly_is_refused(tmp_path):
    # From a review by someone holding their own gradient code against ours: each of these ran
    # and answered, silently, for another model than the one meant.
    from mlp_lm import layers
    p = model.init_params(7, 3, 4, 5, dtype=np.float64)
    X, Y = np.array([[0, 1, 2], [3, 3, 0]]), np.array([1, 6])
    keep = np.array([[True, False] * 6, [False, True] * 6])
    with pytest.raises(ValueError, match="keys 'embcat' and 'h'"):
        model.loss_and_grads(p, X, Y, masks={"emb": keep.astype(float)})  # was no dropout at all
    with pytest.raises(ValueError, match="dict"):
        model.loss_and_grads(p, X, Y, masks=(keep, None))  # was an AttributeError
    with pytest.raises(ValueError, match="floating point"):
        model.loss_and_grads(p, X, Y, masks={"embcat": keep})  # was kept units unscaled by 1/(1-p)
    with pytest.raises(ValueError, match="floating point"):
        layers.dropout_forward(np.ones((2, 2)), np.ones((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="'wd' is not a parameter"):
        model.check_examples(dict(p, wd=np.zeros((12, 7))), X, Y)  # was a model without direct connections
    for fold in (False, True):  # and the step itself, for a gradient checker of one's own
        with pytest.raises(ValueError, match="'wd' is not a parameter"):
            model.loss_and_grads(dict(p, wd=np.zeros((12, 7))), X, Y, fold=fold)
    with pytest.raises(ValueError, match="all be float32 or all float64"):
        model.check_examples(dict(p, W1=p["W1"].astype(np.float32)), X, Y)  # dW1 came back float64
    with pytest.raises(ValueError, match="do not fit together"):
        model.check_examples(dict(p, W1=p["W1"].T.copy(), W2=p["W2"].T.copy()), X, Y)  # torch.nn.Linear's layout
    with pytest.raises(ValueError, match="dict"):
        model.loss_and_grads(p, X, Y, masks=())  # was no dropout at all
    # A masked W2's loss was the plain one's and its dC another function's; lists were AttributeErrors,
    # a missing b2 a KeyError; complex and float16 parameters were taken
    for bad in (dict(p, W2=np.ma.array(p["W2"], mask=np.eye(5, 7, dtype=bool))), dict(p, C=p["C"].tolist()),
                {k: v.astype(np.complex128) for k, v in p.items()}, {k: v.astype(np.float16) for k, v in p.items()}):
        for check in (lambda q: model.loss_and_grads(q, X, Y), lambda q: model.check_examples(q, X, Y)):
            with pytest.raises(ValueError, match="must all be float32 or all float64 numpy arrays"):
                check(bad)
    with pytest.raises(ValueError, match="params lacks b2"):
        model.loss_and_grads({k: v for k, v in p.items() if k != "b2"}, X, Y)
    with pytest.raises(ValueError, match="params lacks C, W1"):
        model.check_examples({k: v for k, v in p.items() if k not in ("C", "W1")}, X, Y)
    with pytest.raises(ValueError, match="C must be"):
        model.check_examples(dict(p, C=np.zeros((7, 0))), X, Y)  # E = 0 was a ZeroDivisionError
    model.check_examples(p, X, Y)  # and the right ones pass
    assert model.loss_and_grads(p, X, Y, masks={"embcat": keep * 2.0, "h": None})[0] > 0
    assert model.loss_and_grads(dict(p, W1=p["W1"].astype(">f8")), X, Y)[0] > 0  # either byte order
    np.save(tmp_path / "W1.npy", p["W1"])  # and a memory-mapped one, as np.load(mmap_mode="r") gives
    assert model.loss_and_grads(dict(p, W1=np.load(tmp_path / "W1.npy", mmap_mode="r")), X, Y)[0] > 0


def test_a_split_batch_refuses_masks_as_one_piece_does():
    # From a hostile round: with the batch in parts, masks=() was no dropout and a mask of the
    # wrong length was sliced silently, where one piece refuses both.
    from mlp_lm import parallel
    p = model.init_params(7, 3, 4, 5, dtype=np.float64)
    X, Y = np.zeros((10, 3), dtype=np.int64), np.ones(10, dtype=np.int64)
    split = parallel.BatchSplit(2)
    try:
        for masks in ((), [], {"embcat": np.ones((20, 12))}):
            with pytest.raises(ValueError, match="masks"):
                split.loss_and_grads(p, X, Y, np.arange(10), masks=masks)
        loss, _ = split.loss_and_grads(p, X, Y, np.arange(10), masks={"embcat": np.full((10, 12), 2.0), "h": None})
        assert np.isfinite(loss)
    finally:
        split.close()
    big_endian = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in p.items()}
    model.check_examples(big_endian, X[:2], Y[:2])  # the same dtype in another byte order
    with pytest.raises(ValueError, match="all be float32 or all float64"):
        model.check_examples({k: v.astype(np.int64) for k, v in p.items()}, X[:2], Y[:2])


def test_weights_in_torch_layout_are_named_as_transposed():
    # From a review by an engineer holding their own code against ours: W1 handed over as
    # torch.nn.Linear keeps it, (outputs, inputs), made check_examples name b1, W2 and Wd (the sizes
    # were read off W1), and loss_and_grads say "x must be (B, D), W (D, M)", naming no layer.
    p = model.init_params(7, 3, 4, 8, dtype=np.float64, direct=True)  # V=7 T=3 E=4 H=8: W1 (12, 8)
    X, Y = np.zeros((6, 3), dtype=np.int64), np.zeros(6, dtype=np.int64)
    for keys in (["W1"], ["W2"], ["Wd"], ["W1", "W2", "Wd"]):
        q = dict(p, **{k: p[k].T.copy() for k in keys})
        for check in (lambda: model.check_examples(q, X, Y), lambda: model.loss_and_grads(q, X, Y),
                      lambda: model.loss_and_grads(q, X, Y, fold=True)):
            with pytest.raises(ValueError) as e:
                check()
            message = str(e.value)
            named = set(re.findall(r"(\w+) is \(", message))
            assert named == set(keys), message  # the others fit together, and are not blamed
            assert f"{', '.join(keys)} in torch.nn.Linear's layout, (outputs, inputs)? Ours are (inputs, outputs)" in message
    # One tensor of another size: that one, not the ones it disagrees with (a hostile review found W1s of
    # another H called transposed, or blamed on b1 and W2, and a right Wd blamed beside a wrong W1).
    sizes = r"\(V=7, T=3, E=4, H=8, the sizes the other tensors agree on\)$"
    for k, shape in (("b1", (5,)), ("W1", (12, 5)), ("W1", (12, 12)), ("W1", (8, 8)), ("W2", (8, 9)), ("C", (7, 5))):
        with pytest.raises(ValueError, match="do not fit together") as e:
            model.check_examples(dict(p, **{k: np.zeros(shape)}), X, Y)
        message = str(e.value)
        assert set(re.findall(r"(\w+) is \(", message)) == {k} and f"{k} is {shape}," in message, message
        assert re.search(sizes, message) and "transpose" not in message, message
    odd_rows = dict(p, W1=np.zeros((3, 8)), Wd=np.zeros((3, 7)))  # W1 and Wd agree on T*E = 3, C says E = 4
    assert "W1's rows must be T*E, whole multiples of C's E=4" in model.shape_problem(dict(odd_rows, W1=np.zeros((3, 5))))
    with pytest.raises(ValueError, match=r"C is \(7, 4\), not \(7, 1\) \(V=7, T=3, E=1, H=8"):  # X's T=3 says E=1
        model.check_examples(odd_rows, X, Y)
    # V == T*E (27 = 3 * 9): both weights turned round still read as turned round
    q = model.init_params(27, 3, 9, 20, dtype=np.float64)
    q = dict(q, W1=q["W1"].T.copy(), W2=q["W2"].T.copy())
    with pytest.raises(ValueError, match=r"W1 is \(20, 27\), not \(27, 20\), W2 is \(27, 20\), not \(20, 27\) .*; "
                                         r"W1, W2 in torch.nn.Linear's layout"):
        model.check_examples(q, np.zeros((2, 3), dtype=np.int64), np.zeros(2, dtype=np.int64))
    # and X of another T is X's fault, whatever the layers happen to see first (4*E = H made W look turned round)
    for q, fold, masks in ((model.init_params(7, 3, 4, 16), False, None), (p, True, {"C": np.ones((3, 7, 4))}),
                           (p, False, None)):
        for bad_X in (np.zeros((6, 4), dtype=np.int64), np.zeros(4, dtype=np.int64)):
            with pytest.raises(ValueError, match=rf"^X must be \(B, T\) = \(B, 3\) contexts for this network, "
                                                 rf"got shape {re.escape(str(bad_X.shape))}$"):
                model.forward(q, bad_X, masks, fold=fold)


def test_parameters_of_another_library_are_refused_in_one_line():
    # A torch tensor's dtype has no .name: the refusal crashed while writing its own message.
    class Tensorish:  # what the message reads of a torch tensor (torch is optional)
        dtype = object()
    p = model.init_params(7, 3, 4, 5, dtype=np.float64)
    X, Y = np.zeros((2, 3), dtype=np.int64), np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match=r"got C float64, W1 .*Tensorish of <object object"):
        model.check_examples(dict(p, W1=Tensorish()), X, Y)
    torch = pytest.importorskip("torch")
    for bad in ({k: torch.tensor(v) for k, v in p.items()}, dict(p, W1=torch.tensor(p["W1"], requires_grad=True))):
        for check in (lambda q: model.check_examples(q, X, Y), lambda q: model.loss_and_grads(q, X, Y)):
            with pytest.raises(ValueError, match=r"numpy arrays, got .*W1 torch.Tensor of torch.float64.*; "
                                                 r"a torch tensor t is t.detach\(\).numpy\(\)$"):
                check(bad)


def test_a_mask_of_another_shape_is_named_by_its_key():
    # The layer said "the dropout mask is (1, 8), not x's (6, 8)", without saying which of the masks.
    p = model.init_params(7, 3, 4, 8, dtype=np.float64)
    X, Y = np.zeros((6, 3), dtype=np.int64), np.zeros(6, dtype=np.int64)
    for masks, fold, said in (({"h": np.ones((1, 8))}, False, r"masks\['h'\] is \(1, 8\), not \(B, H\) = \(6, 8\)"),
                              ({"embcat": np.ones((6, 13)), "h": np.ones((6, 8))}, False,
                               r"masks\['embcat'\] is \(6, 13\), not \(B, T\*E\) = \(6, 12\)"),
                              ({"C": np.ones((3, 7, 5))}, True, r"masks\['C'\] is \(3, 7, 5\), not \(T, V, E\) = \(3, 7, 4\)")):
        with pytest.raises(ValueError, match=said):
            model.loss_and_grads(p, X, Y, masks=masks, fold=fold)
    assert model.loss_and_grads(p, X, Y, masks={"embcat": np.ones((6, 12)), "h": np.ones((6, 8))})[0] > 0


def test_the_entry_points_from_python_say_when_the_parameters_do_not_fit_together():
    # logits and next_probs computed on with a W2 of another vocabulary than C's, and a missing W1 was a KeyError
    P = model.init_params(7, 3, 4, 8)
    X = np.zeros((2, 3), dtype=int)
    other_vocabulary = {**P, "W2": np.zeros((8, 8), np.float32), "b2": np.zeros(8, np.float32)}
    for f in (model.logits, model.next_probs):
        with pytest.raises(ValueError, match=re.escape("the parameters do not fit together: C is (7, 4), not (8, 4)")):
            f(other_vocabulary, X)
        with pytest.raises(ValueError, match="params lacks W1"):
            f({k: p for k, p in P.items() if k != "W1"}, X)
        with pytest.raises(ValueError, match="the parameters must all be float32 or all float64 numpy arrays"):
            f({**P, "W1": P["W1"].tolist()}, X)
    with pytest.raises(ValueError, match="temperature must be 0 or more, got True"):  # as sampling.generate says
        model.next_probs(P, X, temperature=True)
    with pytest.raises(ValueError, match="temperature must be 0 or more, got '1'"):  # was Python's "'>=' not supported"
        model.next_probs(P, X, temperature="1")
    with pytest.raises(ValueError, match="weight_decay must be finite and 0 or more, got None"):
        model.l2_penalty(P, None)
