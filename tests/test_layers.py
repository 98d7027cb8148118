"""Every layer's backward pass against scipy's finite differences, in float64.

Each layer is checked through the scalar L = sum(out * R) for a random R, whose
gradient with respect to out is R: so backward(R, cache) must equal dL/dinput.
"""
import re

import numpy as np
import pytest

from mlp_lm import layers, onehot
from mlp_lm.finitediff import assert_close, compare, numerical_grad

B, T, E, H, V = 5, 3, 4, 6, 7


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def check(name, f, x, analytic):
    assert analytic.shape == x.shape, f"{name}: gradient shape {analytic.shape} != input shape {x.shape}"
    assert analytic.dtype == np.float64
    assert_close(compare(name, analytic, numerical_grad(f, x)))


def test_embedding_backward(rng):
    C = rng.standard_normal((V, E))
    X = rng.integers(0, V, size=(B, T))
    emb, cache = layers.embedding_forward(C, X)
    assert emb.shape == (B, T, E)
    R = rng.standard_normal(emb.shape)
    dC = layers.embedding_backward(R, cache)
    check("dC", lambda C_: np.sum(layers.embedding_forward(C_, X)[0] * R), C, dC)


def test_embedding_backward_adds_repeated_indices():
    # Symbol 2 appears three times, symbol 0 twice, symbol 1 never.
    C = np.arange(8.0).reshape(4, 2)
    X = np.array([[2, 0, 2], [2, 3, 0]])
    demb = np.arange(12.0).reshape(2, 3, 2) + 1.0  # (B=2, T=3, E=2)
    dC = layers.embedding_backward(demb, layers.embedding_forward(C, X)[1])
    expected = np.zeros_like(C)
    expected[2] = demb[0, 0] + demb[0, 2] + demb[1, 0]
    expected[0] = demb[0, 1] + demb[1, 2]
    expected[3] = demb[1, 1]
    np.testing.assert_array_equal(dC, expected)
    # The trap the comment in layers.py warns about: fancy-index += keeps one write per index.
    trap = np.zeros_like(C)
    trap[X] += demb
    assert not np.array_equal(trap, expected)


def test_concat_backward(rng):
    emb = rng.standard_normal((B, T, E))
    embcat, cache = layers.concat_forward(emb)
    assert embcat.shape == (B, T * E)
    np.testing.assert_array_equal(embcat[:, E:2 * E], emb[:, 1])  # the second context slot
    R = rng.standard_normal(embcat.shape)
    demb = layers.concat_backward(R, cache)
    check("demb", lambda e: np.sum(layers.concat_forward(e)[0] * R), emb, demb)
    assert not np.shares_memory(demb, R)


def test_linear_backward(rng):
    x = rng.standard_normal((B, T * E))
    W = rng.standard_normal((T * E, H))
    b = rng.standard_normal(H)
    out, cache = layers.linear_forward(x, W, b)
    assert out.shape == (B, H)
    R = rng.standard_normal(out.shape)
    dx, dW, db = layers.linear_backward(R, cache)
    check("dx", lambda x_: np.sum(layers.linear_forward(x_, W, b)[0] * R), x, dx)
    check("dW", lambda W_: np.sum(layers.linear_forward(x, W_, b)[0] * R), W, dW)
    check("db", lambda b_: np.sum(layers.linear_forward(x, W, b_)[0] * R), b, db)


def test_tanh_backward(rng):
    x = 1.5 * rng.standard_normal((B, H))
    out, cache = layers.tanh_forward(x)
    R = rng.standard_normal(out.shape)
    dx = layers.tanh_backward(R, cache)
    check("dx", lambda x_: np.sum(layers.tanh_forward(x_)[0] * R), x, dx)


@pytest.mark.parametrize("dout", [1.0, 0.37])
def test_softmax_cross_entropy_backward(rng, dout):
    logits = 2.0 * rng.standard_normal((B, V))
    Y = rng.integers(0, V, size=B)
    Y[:2] = 3  # a repeated target
    loss, cache = layers.softmax_cross_entropy_forward(logits, Y)
    dlogits = layers.softmax_cross_entropy_backward(dout, cache)
    check("dlogits", lambda z: dout * float(layers.softmax_cross_entropy_forward(z, Y)[0]), logits, dlogits)
    # Every row of (softmax - onehot) sums to zero.
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)


def test_softmax_cross_entropy_matches_definition(rng):
    logits = rng.standard_normal((B, V))
    Y = rng.integers(0, V, size=B)
    loss, _ = layers.softmax_cross_entropy_forward(logits, Y)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(probs[np.arange(B), Y])), rel=1e-12)


def test_softmax_cross_entropy_is_stable_for_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]])
    Y = np.array([0, 0])
    loss, cache = layers.softmax_cross_entropy_forward(logits, Y)
    # Row 0 is right with certainty (NLL 0), row 1 is wrong by 1600 nats.
    assert loss == pytest.approx(1600.0 / 2)
    dlogits = layers.softmax_cross_entropy_backward(1.0, cache)
    assert np.all(np.isfinite(dlogits))
    np.testing.assert_allclose(dlogits, np.array([[0, 0, 0], [-1, 1, 0]]) / 2, atol=1e-300)
    loss32, _ = layers.softmax_cross_entropy_forward(logits.astype(np.float32), Y)
    assert np.isfinite(loss32)


def test_backward_does_not_modify_upstream_gradient(rng):
    x = rng.standard_normal((B, H))
    out, cache = layers.tanh_forward(x)
    R = rng.standard_normal(out.shape)
    R0 = R.copy()
    layers.tanh_backward(R, cache)
    lin_out, lin_cache = layers.linear_forward(x, rng.standard_normal((H, V)), rng.standard_normal(V))
    D = rng.standard_normal(lin_out.shape)
    D0 = D.copy()
    layers.linear_backward(D, lin_cache)
    np.testing.assert_array_equal(R, R0)
    np.testing.assert_array_equal(D, D0)


@pytest.mark.parametrize("identity_max_v", [0, onehot.IDENTITY_MAX_V])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_one_hot_rows_both_ways(identity_max_v, dtype, monkeypatch, rng):
    # Rows of a kept identity (small vocabularies) or a filled zero matrix (large ones): the same rows.
    monkeypatch.setattr(onehot, "IDENTITY_MAX_V", identity_max_v)
    idx = rng.integers(0, V, size=20)
    idx[:3] = idx[3]  # a repeated index for sure
    O = onehot.one_hot(idx, V, dtype)
    assert O.dtype == dtype and O.shape == (20, V)
    np.testing.assert_array_equal(O, np.eye(V, dtype=dtype)[idx])
    # A fresh, writable array each call: changing one leaves the next (and the kept identity) alone.
    O[:] = 7
    np.testing.assert_array_equal(onehot.one_hot(idx, V, dtype), np.eye(V, dtype=dtype)[idx])


@pytest.mark.parametrize("identity_max_v", [0, onehot.IDENTITY_MAX_V])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_softmax_cross_entropy_backward_both_paths(identity_max_v, smoothing, monkeypatch, rng):
    # q as a matrix of one-hot rows (small vocabularies) or its B ones subtracted in place (large
    # ones): the gradient is (p - q) / B either way.
    monkeypatch.setattr(onehot, "IDENTITY_MAX_V", identity_max_v)
    logits = rng.standard_normal((B, V))
    Y = rng.integers(0, V, size=B)
    _, cache = layers.softmax_cross_entropy_forward(logits, Y, smoothing)
    dlogits = layers.softmax_cross_entropy_backward(1.0, cache)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    q = (1 - smoothing) * np.eye(V)[Y] + smoothing / V
    np.testing.assert_allclose(dlogits, (p - q) / B, rtol=1e-12, atol=1e-15)
    check("dlogits", lambda z: float(layers.softmax_cross_entropy_forward(z, Y, smoothing)[0]), logits, dlogits)


@pytest.mark.parametrize("onehot_max", [0, layers.ONEHOT_MAX])
def test_both_embedding_backward_paths_agree_and_are_right(onehot_max, monkeypatch, rng):
    # Small vocabularies take the one-hot product, large ones np.add.at: both are the scatter-add.
    monkeypatch.setattr(layers, "ONEHOT_MAX", onehot_max)
    C = rng.standard_normal((V, E))
    X = rng.integers(0, V, size=(B, T))
    X[0, :] = X[1, 0]  # a repeated index for sure
    R = rng.standard_normal((B, T, E))
    dC = layers.embedding_backward(R, layers.embedding_forward(C, X)[1])
    check("dC", lambda C_: np.sum(layers.embedding_forward(C_, X)[0] * R), C, dC)
    expected = np.zeros_like(C)
    np.add.at(expected, X.reshape(-1), R.reshape(-1, E))
    np.testing.assert_allclose(dC, expected, rtol=1e-13, atol=1e-13)


# --- what the layers refuse: inputs numpy would take and answer wrongly -----

@pytest.mark.parametrize("bad_Y, words", [
    (np.array([[1], [2], [3], [4], [0]]), "Y (B,)"),  # (B, 1) would broadcast to (B, B) targets
    (np.array([True, False, True, False, True]), "integer"),  # bool would be read as a mask
    (np.array([1.0, 2.0, 3.0, 4.0, 0.0]), "integer"),
    (np.array([1, 2, 3, 4, -1]), "outside 0..6"),  # -1 would be read as the last symbol
    (np.array([1, 2, 3, 4, V]), "outside 0..6"),
])
def test_cross_entropy_refuses_targets_it_would_misread(bad_Y, words, rng):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        layers.softmax_cross_entropy_forward(rng.standard_normal((B, V)), bad_Y)


@pytest.mark.parametrize("smoothing", [-0.5, 1.0, 1.5, float("nan")])
def test_cross_entropy_refuses_smoothing_outside_its_range(smoothing, rng):
    with pytest.raises(ValueError, match=r"label smoothing must be one number in \[0, 1\)"):
        layers.softmax_cross_entropy_forward(rng.standard_normal((B, V)), np.zeros(B, int), smoothing)


def test_cross_entropy_refuses_an_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        layers.softmax_cross_entropy_forward(np.zeros((0, V)), np.zeros(0, int))
    with pytest.raises(ValueError, match=r"logits of no symbols \(V = 0\) have no softmax"):  # was "outside 0..-1"
        layers.softmax_cross_entropy_forward(np.zeros((2, 0)), np.zeros(2, int))


@pytest.mark.parametrize("bad_X", [np.array([[0, 1, -1]]), np.array([[0, 1, V]]), np.array([[True, False, True]]),
                                   np.array([[0.0, 1.0, 2.0]])])
def test_embedding_refuses_indices_it_would_misread(bad_X, rng):
    with pytest.raises(ValueError, match="X "):
        layers.embedding_forward(rng.standard_normal((V, E)), bad_X)


def test_one_hot_refuses_what_its_two_paths_would_read_differently():
    assert onehot.one_hot([2, 0], 3, np.float64).tolist() == [[0, 0, 1], [1, 0, 0]]  # a list is fine
    for bad, words in (([[1], [2]], "one row"), ([True, False], "integer"), ([0, -1], "outside"), ([3], "outside")):
        with pytest.raises(ValueError, match=words):
            onehot.one_hot(bad, 3, np.float64)


@pytest.mark.parametrize("p", [1.0, -0.1, float("nan"), True, "0.5", None])  # True would be 1; "0.5" failed in Python's words
def test_dropout_mask_refuses_a_probability_outside_its_range(p):
    with pytest.raises(ValueError, match="dropout probability"):
        layers.dropout_mask((2, 3), p, np.random.default_rng(0))


@pytest.mark.parametrize("rng", [0, None, np.random.RandomState(0)])
def test_dropout_mask_wants_a_generator(rng):
    # a seed in its place was "'int' object has no attribute 'random'"; RandomState takes no dtype
    with pytest.raises(TypeError, match=r"rng must be a numpy Generator, np.random.default_rng\(seed\)"):
        layers.dropout_mask((2, 3), 0.5, rng)


def test_a_mask_of_another_dtype_leaves_the_gradients_in_the_network_s_dtype(rng):
    from mlp_lm import model
    params = model.init_params(V, T, E, H, dtype=np.float32)
    X, Y = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=B)
    masks = {"embcat": layers.dropout_mask((B, T * E), 0.5, rng)}  # float64, dropout_mask's default
    assert masks["embcat"].dtype == np.float64
    _, grads = model.loss_and_grads(params, X, Y, masks=masks)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint8, np.uint64])
def test_indices_of_any_integer_dtype_are_read_as_they_are(dtype, rng):
    C = rng.standard_normal((V, E))
    X = rng.integers(0, V, size=(B, T))
    np.testing.assert_array_equal(layers.embedding_forward(C, X.astype(dtype))[0], C[X])
    logits, Y = rng.standard_normal((B, V)), rng.integers(0, V, size=B)
    assert layers.softmax_cross_entropy_forward(logits, Y.astype(dtype))[0] == \
        layers.softmax_cross_entropy_forward(logits, Y)[0]
    np.testing.assert_array_equal(onehot.one_hot(Y.astype(dtype), V, np.float64), np.eye(V)[Y])


def test_dropout_on_integers_is_not_truncated():
    # The mask is cast to x's dtype only for a float x (to keep a float32 network float32).
    out, _ = layers.dropout_forward(np.ones((2, 2), dtype=np.int64), [[1.25, 0.0], [0.0, 1.25]])
    assert out.tolist() == [[1.25, 0.0], [0.0, 1.25]]


def test_shapes_that_would_broadcast_into_a_wrong_gradient_are_refused(rng):
    x, W = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    for bad_x, bad_W, bad_b in ((x, W, np.ones(1)),  # db came back (4,) [2 2 2 2]; the true one is [8]
                                (np.ones(3), np.eye(3), np.zeros(3)),  # dW came back a scalar
                                (x, W.T, np.zeros(4))):
        with pytest.raises(ValueError, match=r"x must be \(B, D\), W \(D, M\) and b \(M,\)"):
            layers.linear_forward(bad_x, bad_W, bad_b)
    with pytest.raises(ValueError, match=r"X \(B, T\) symbol indices, .* got shapes \(7, 4\) and \(3,\)"):
        layers.embedding_forward(rng.standard_normal((V, E)), np.array([1, 2, 3]))  # was an unpacking error later
    with pytest.raises(ValueError, match=r"C must be \(V, E\) .* got shapes \(7,\)"):
        layers.embedding_forward(rng.standard_normal(V), rng.integers(0, V, (B, T)))  # gave a (B, T) "emb"
    out, _ = layers.linear_forward(x, W, np.zeros(4))
    assert out.shape == (2, 4) and layers.linear_forward(x, W)[0].shape == (2, 4)  # and the right ones pass


def test_an_upstream_gradient_of_another_shape_is_refused_not_broadcast(rng):
    # From a hostile round: each of these gave a gradient, of the wrong numbers or the wrong layout.
    C, X = rng.standard_normal((V, E)), rng.integers(0, V, (B, T))
    emb, emb_cache = layers.embedding_forward(C, X)
    embcat, cat_cache = layers.concat_forward(emb)
    h, tanh_cache = layers.tanh_forward(rng.standard_normal((B, H)))
    _, drop_cache = layers.dropout_forward(h, layers.dropout_mask((B, H), 0.5, rng))
    logits, lin_cache = layers.linear_forward(h, rng.standard_normal((H, V)), np.zeros(V))
    _, ce_cache = layers.softmax_cross_entropy_forward(logits, rng.integers(0, V, B))
    bad = [(layers.tanh_backward, np.ones((B, 1)), tanh_cache), (layers.tanh_backward, 2.0, tanh_cache),
           (layers.dropout_backward, np.ones((1, H)), drop_cache),
           (layers.softmax_cross_entropy_backward, np.ones(V), ce_cache),
           (layers.embedding_backward, np.ones((T, B, E)), emb_cache),  # the right size, another layout
           (layers.concat_backward, np.ones(B * T * E), cat_cache),
           (layers.linear_backward, np.ones((B, 1)), lin_cache)]
    for backward, dout, cache in bad:
        with pytest.raises(ValueError, match="must have the forward output's shape"):
            backward(dout, cache)
    assert layers.dropout_backward(np.ones(3), None).shape == (3,)  # no mask: the identity on anything


def test_what_is_not_a_numpy_array_is_refused_by_name(rng, tmp_path):
    # From a review by an engineer holding their own code against ours: a torch tensor or a list failed
    # deep inside numpy or torch ("'list' object has no attribute 'dot'", "1D tensors expected"), or came
    # back as a tensor, or went into the cache to fail in the backward (a list W).
    x, W = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    C, X = rng.standard_normal((V, E)), rng.integers(0, V, (B, T))
    emb, emb_cache = layers.embedding_forward(C, X)
    h, tanh_cache = layers.tanh_forward(x)
    calls = [(lambda a: layers.linear_forward(a, W), "x"), (lambda a: layers.linear_forward(x, a), "W"),
             (lambda a: layers.linear_forward(x, W, a), "b"), (lambda a: layers.embedding_forward(a, X), "C"),
             (layers.concat_forward, "emb"), (layers.tanh_forward, "x"), (lambda a: layers.dropout_forward(a, None), "x"),
             (lambda a: layers.softmax_cross_entropy_forward(a, np.zeros(2, int)), "logits"),
             (lambda a: layers.tanh_backward(a, tanh_cache), "dout"), (lambda a: layers.dropout_backward(a, None), "dout"),
             (lambda a: layers.embedding_backward(a, emb_cache), "demb")]
    for call, name in calls:
        for value in (np.ones((2, 4)).tolist(), _Tensorish()):
            with pytest.raises(TypeError, match=rf"^{name} must be a numpy array, got a .*(list|_Tensorish)"):
                call(value)
    with pytest.raises(TypeError, match=r"^x, W and b must be numpy arrays, got a list for x, a list for W, a list for b"):
        layers.linear_forward(x.tolist(), W.tolist(), np.zeros(4).tolist())
    with pytest.raises(TypeError, match=r"^x and W must be numpy arrays, got None for x, a list for W; np.asarray"):
        layers.linear_forward(None, W.tolist())  # None was dropped from the message, and with it the name
    for call in (layers.tanh_forward, layers.concat_forward, lambda a: layers.tanh_backward(a, tanh_cache)):
        with pytest.raises(TypeError, match=r"must be a numpy array, got None"):
            call(None)
    with pytest.raises(ValueError, match=r"W in torch.nn.Linear's layout, \(outputs, inputs\)\? Pass W.T"):
        layers.linear_forward(x, W.T)
    with pytest.raises(ValueError, match=r"emb must be \(B, T, E\), got shape \(2, 3\)"):
        layers.concat_forward(x)  # was "not enough values to unpack"
    # numbers stay numbers where the output is a scalar (the loss), and a memory-mapped array is an array
    _, ce_cache = layers.softmax_cross_entropy_forward(x, np.array([0, 1]))
    for one in (1.0, 1, np.float32(1.0), np.array(1.0)):
        assert layers.softmax_cross_entropy_backward(one, ce_cache).shape == (2, 3)
    np.save(tmp_path / "W.npy", W)
    mapped = np.load(tmp_path / "W.npy", mmap_mode="r")  # what np.load(mmap_mode="r") gives: an ndarray subclass
    np.testing.assert_array_equal(layers.linear_forward(x, mapped)[0], x @ W)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself: what a user may still hold
def test_an_np_matrix_is_refused_for_its_star_is_a_matrix_product(rng):
    # From an engineer's trial: scipy.sparse's todense() gives an np.matrix, which passed for an array; where B == H,
    # tanh's backward and dropout multiplied matrices where they mean elementwise, and dW came out wrong in silence
    x, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))  # B = H = 4: the matrix products fit
    a, lin_cache = layers.linear_forward(x, W, np.zeros(4))
    h, tanh_cache = layers.tanh_forward(a)
    C, X = rng.standard_normal((V, E)), rng.integers(0, V, (4, T))
    _, emb_cache = layers.embedding_forward(C, X)
    _, ce_cache = layers.softmax_cross_entropy_forward(h, np.array([0, 1, 2, 3]))
    square = np.asmatrix(rng.standard_normal((4, 4)))
    calls = [(lambda m: layers.linear_forward(np.asmatrix(x), W), "x"), (lambda m: layers.tanh_forward(m), "x"),
             (lambda m: layers.dropout_forward(m, np.ones((4, 4))), "x"), (lambda m: layers.tanh_backward(m, tanh_cache), "dout"),
             (lambda m: layers.linear_backward(m, lin_cache), "dout"), (lambda m: layers.embedding_forward(np.asmatrix(C), X), "C"),
             (lambda m: layers.softmax_cross_entropy_forward(m, np.array([0, 1, 2, 3])), "logits"),
             (lambda m: layers.softmax_cross_entropy_backward(np.asmatrix(1.0), ce_cache), "dout")]
    for call, name in calls:
        with pytest.raises(TypeError, match=rf"^{name} must be a numpy array, got a numpy.matrix; np.asarray makes one "
                                            r"\(an np.matrix's \* multiplies matrices\)$"):
            call(square)
    # what the message says to do gives the elementwise answer
    dout = np.asarray(square)
    np.testing.assert_array_equal(layers.tanh_backward(dout, tanh_cache), (1 - h**2) * dout)


def test_an_upstream_gradient_of_booleans_is_refused(rng):
    # From an engineer's trial: embedding_backward of a bool demb ORed the rows' gradients (True, not 3)
    C, X = rng.standard_normal((V, E)), np.zeros((2, T), int)
    _, emb_cache = layers.embedding_forward(C, X)
    with pytest.raises(TypeError, match=r"^demb holds booleans, not gradients; astype\(float\) makes numbers of them$"):
        layers.embedding_backward(np.ones((2, T, E), bool), emb_cache)
    assert layers.embedding_backward(np.ones((2, T, E), int), emb_cache)[0, 0] == 2 * T  # integers add
    _, ce_cache = layers.softmax_cross_entropy_forward(rng.standard_normal((2, V)), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"^dout must be a numpy array, got a bool"):
        layers.softmax_cross_entropy_backward(True, ce_cache)


def test_the_loss_gradient_scales_by_1_over_B_in_double_precision_whatever_the_type_of_dout(rng):
    # From an engineer's trial: dout / B was computed in dout's precision, 3e-8 off for a float32 1 and 2.4e-4 for a
    # float16 one; at B = 70,000 a float16 B overflowed and dlogits came back all zeros
    for B_ in (3, 70_000):
        logits, Y = rng.standard_normal((B_, 3)), rng.integers(0, 3, B_)
        _, cache = layers.softmax_cross_entropy_forward(logits, Y)
        exact = layers.softmax_cross_entropy_backward(1.0, cache)
        for one in (np.float32(1), np.float16(1), np.array(1, np.float16)):
            np.testing.assert_array_equal(layers.softmax_cross_entropy_backward(one, cache), exact)
        assert np.abs(exact).max() > 0


class _Tensorish:
    """Something with an array's shape that is not a numpy array, as a torch tensor is (torch is optional)."""
    shape = (2, 4)
    ndim = 2
    dtype = "float64"


def test_a_torch_tensor_is_refused_with_how_to_convert_it(rng):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"^x must be a numpy array, got a torch.Tensor; a torch tensor t is "
                                        r"t.detach\(\).numpy\(\)"):
        layers.tanh_forward(torch.ones(2, 3, requires_grad=True))  # came back a tensor
    with pytest.raises(TypeError, match=r"^dout must be a numpy array, got a torch.Tensor"):
        layers.tanh_backward(torch.ones(2, 3), layers.tanh_forward(np.ones((2, 3)))[1])  # its shape passed for ours


def test_linear_forward_names_integer_inputs_that_cannot_take_a_float_bias():
    # From an engineer's review: numpy's "Cannot cast ufunc 'add' output" where the library says what to do.
    x, W = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    with pytest.raises(TypeError, match=r"floating-point arrays, got int64, int64 and float64; astype\(np.float64\)"):
        layers.linear_forward(x, W, np.zeros(4))
    out, _ = layers.linear_forward(x.astype(np.float64), W.astype(np.float64), np.zeros(4))
    assert np.array_equal(out, x @ W)


def test_label_smoothing_is_one_number_taken_as_a_python_float():
    # From hostile reviews: a float16 eps rounded 1 - eps, and the loss, to float16; an array of one eps passed the
    # range check and then failed in float() with a TypeError
    logits, Y = np.random.default_rng(0).standard_normal((4, 5)), np.array([0, 1, 2, 3])
    loss64 = layers.softmax_cross_entropy_forward(logits, Y, float(np.float16(0.1)))[0]
    assert layers.softmax_cross_entropy_forward(logits, Y, np.float16(0.1))[0] == loss64
    with pytest.raises(ValueError, match=r"label smoothing must be one number in \[0, 1\), got array\(\[0.1\]\)"):
        layers.softmax_cross_entropy_forward(logits, Y, np.array([0.1]))
    for odd in ("0.1", None, True):  # a string or None failed in Python's words ("'<=' not supported ...")
        with pytest.raises(ValueError, match=rf"label smoothing must be one number in \[0, 1\), got {re.escape(repr(odd))}$"):
            layers.softmax_cross_entropy_forward(logits, Y, odd)
