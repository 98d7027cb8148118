"""Invariants of the layers, on inputs hypothesis chooses (property-based tests)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlp_lm import layers

finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def logits_and_targets(draw):
    B, V = draw(st.integers(1, 6)), draw(st.integers(2, 9))
    z = draw(arrays(np.float64, (B, V), elements=finite))
    Y = np.array(draw(st.lists(st.integers(0, V - 1), min_size=B, max_size=B)))
    return z, Y


@settings(max_examples=60, deadline=None)
@given(logits_and_targets(), st.floats(-1e3, 1e3), st.sampled_from([0.0, 0.1]))
def test_cross_entropy_ignores_a_constant_added_to_a_row(zY, c, smoothing):
    z, Y = zY
    loss, cache = layers.softmax_cross_entropy_forward(z, Y, smoothing)
    shifted = z.copy()
    shifted[0] += c
    loss2, cache2 = layers.softmax_cross_entropy_forward(shifted, Y, smoothing)
    assert abs(float(loss) - float(loss2)) <= 1e-9 * max(1.0, abs(float(loss)))
    np.testing.assert_allclose(layers.softmax_cross_entropy_backward(1.0, cache),
                               layers.softmax_cross_entropy_backward(1.0, cache2), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(logits_and_targets(), st.sampled_from([0.0, 0.2]))
def test_each_row_of_dlogits_sums_to_zero_and_the_loss_is_positive(zY, smoothing):
    z, Y = zY
    loss, cache = layers.softmax_cross_entropy_forward(z, Y, smoothing)
    dz = layers.softmax_cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(dz.sum(axis=1), 0.0, atol=1e-12)
    assert float(loss) >= 0 and np.isfinite(float(loss))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 4), st.integers(1, 5), st.integers(1, 30), st.data())
def test_the_embedding_backward_conserves_the_total_gradient(B, T, E, V, data):
    X = np.array(data.draw(st.lists(st.integers(0, V - 1), min_size=B * T, max_size=B * T))).reshape(B, T)
    demb = data.draw(arrays(np.float64, (B, T, E), elements=finite))
    _, cache = layers.embedding_forward(np.zeros((V, E)), X)
    dC = layers.embedding_backward(demb, cache)
    # Every (b, t) gradient lands in exactly one row: totals per dimension are kept ...
    np.testing.assert_allclose(dC.sum(axis=0), demb.reshape(-1, E).sum(axis=0), atol=1e-9)
    # ... and a symbol that never occurs gets nothing.
    unused = np.setdiff1d(np.arange(V), X)
    assert not dC[unused].any()


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 7)), elements=finite))
def test_tanh_backward_is_bounded_by_its_input_gradient(x):
    out, cache = layers.tanh_forward(x)
    dout = np.ones_like(x)
    dx = layers.tanh_backward(dout, cache)
    assert np.all(np.abs(out) <= 1) and np.all((dx >= 0) & (dx <= 1))


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=120).map(lambda t: t.encode("utf-8"))))
def test_the_data_loader_gives_a_dataset_or_one_data_error(tmp_path_factory, raw):
    from mlp_lm.data import load_splits
    from mlp_lm.wordfile import DataError
    path = tmp_path_factory.mktemp("data") / "items.txt"
    path.write_bytes(raw)
    try:
        splits = load_splits(path, 3)
    except DataError as e:
        assert str(e) and "\n" not in str(e)  # one line a person can act on
        return
    X, Y = splits.train
    assert X.shape == (len(Y), 3) and X.dtype == Y.dtype == np.int64
    assert 0 <= X.min() and max(X.max(), Y.max()) < len(splits.vocab) and splits.vocab.itos[0] == "."
    assert len(Y) == sum(len(item) + 1 for item in splits.items[0])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_checkpoint_loader_on_damaged_files_loads_or_says_why(tmp_path_factory, data):
    from mlp_lm import checkpoint, model
    from mlp_lm.checkpoint import CheckpointError
    from mlp_lm.data import Vocab
    d = tmp_path_factory.mktemp("ckpt")
    checkpoint.save(d / "model.npz", model.init_params(5, 2, 3, 4), Vocab(".abcd"), {"block_size": 2})
    raw = bytearray((d / "model.npz").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):  # flip some bytes, or cut the file short
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    (d / "model.npz").write_bytes(bytes(raw))
    try:
        params, vocab, config = checkpoint.load(d / "model.npz")
    except CheckpointError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert params["W1"].shape == (2 * params["C"].shape[1], params["b1"].shape[0])
    assert all(np.all(np.isfinite(p)) for p in params.values()) and vocab.itos[0] == "."
