"""The folded first layer (folded.py): the same function as embedding, concatenation and linear,
its backward against scipy's finite differences, and its dropout on the per-position tables."""
import numpy as np
import pytest

from mlp_lm import folded, layers, model, parallel
from mlp_lm.finitediff import assert_close, compare, numerical_grad
from mlp_lm.gradcheck import check_model, random_params

V, T, E, N, B = 7, 3, 4, 5, 11


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def plain(C, X, W, mask=None):
    """embcat @ W the long way, with fold's mask applied as the embedding each example sees."""
    emb = C[X]  # (B, T, E)
    if mask is not None:
        emb = emb * mask[np.arange(X.shape[1]), X]
    return emb.reshape(len(X), -1) @ W


def inputs(rng, with_mask):
    """Random C, X, W and (with_mask) a dropout mask on each position's copy of C."""
    C, W = rng.standard_normal((V, E)), rng.standard_normal((T * E, N))
    X = rng.integers(0, V, size=(B, T))
    return C, X, W, layers.dropout_mask((T, V, E), 0.4, rng) if with_mask else None


@pytest.mark.parametrize("with_mask", [False, True])
def test_the_tables_give_what_the_concatenation_gives(with_mask, rng):
    C, X, W, mask = inputs(rng, with_mask)
    out, _ = folded.fold_forward(C, X, W, mask)
    np.testing.assert_allclose(out, plain(C, X, W, mask), rtol=0, atol=1e-13)


@pytest.mark.parametrize("with_mask", [False, True])
def test_fold_backward_matches_finite_differences(with_mask, rng):
    C, X, W, mask = inputs(rng, with_mask)
    out, cache = folded.fold_forward(C, X, W, mask)
    R = rng.standard_normal(out.shape)  # L = sum(out * R), so dL/dout = R
    dC, dW = folded.fold_backward(R, cache)
    assert dC.shape == C.shape and dW.shape == W.shape
    assert_close(compare("dC", dC, numerical_grad(lambda C_: np.sum(folded.fold_forward(C_, X, W, mask)[0] * R), C)))
    assert_close(compare("dW", dW, numerical_grad(lambda W_: np.sum(folded.fold_forward(C, X, W_, mask)[0] * R), W)))


def test_a_symbol_never_seen_at_a_position_gets_no_gradient_from_it(rng):
    C, W = rng.standard_normal((V, E)), rng.standard_normal((T * E, N))
    X = rng.integers(1, V, size=(B, T))  # symbol 0 nowhere
    _, cache = folded.fold_forward(C, X, W)
    dC, _ = folded.fold_backward(rng.standard_normal((B, N)), cache)
    assert np.all(dC[0] == 0)
    assert np.all(dC[np.unique(X)].any(axis=1))  # and every symbol that is seen does


SHAPES = [  # (V, T, E, H, B, direct)
    (27, 3, 2, 6, 8, False),
    (5, 1, 3, 4, 6, True),  # block size 1
    (11, 4, 2, 5, 7, True),
    (3, 2, 1, 3, 9, False),  # more examples than symbols: every table row is used many times
]


@pytest.mark.parametrize("V_,T_,E_,H,B_,direct", SHAPES)
def test_the_folded_model_s_every_gradient_matches_finite_differences(V_, T_, E_, H, B_, direct):
    params = random_params(V_, T_, E_, H, seed=V_ + 10 * T_, direct=direct)
    rng = np.random.default_rng(V_ * T_)
    X, Y = rng.integers(0, V_, size=(B_, T_)), rng.integers(0, V_, size=B_)
    masks = {"C": layers.dropout_mask((T_, V_, E_), 0.3, rng), "h": layers.dropout_mask((B_, H), 0.2, rng)}
    rows = check_model(params, X, Y, masks=masks, smoothing=0.1, fold=True)
    assert [r.name for r in rows] == ["dC", "dW1", "db1", "dW2", "db2", *(["dWd"] if direct else []),
                                      "dlogits", "dh", "dhpreact"]
    for r in rows:
        assert r.scale > 0
        assert_close(r)


def test_the_check_catches_a_fold_backward_that_forgets_the_mask(monkeypatch):
    params = random_params(7, 3, 4, 8, seed=1)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 7, size=(6, 3)), rng.integers(0, 7, size=6)
    masks = {"C": layers.dropout_mask((3, 7, 4), 0.3, rng)}
    right = folded.fold_backward

    def forgetful(dout, cache):
        S, Ct, Wt, mask = cache
        return right(dout, (S, Ct, Wt, None))

    monkeypatch.setattr(folded, "fold_backward", forgetful)
    bad = [r.name for r in check_model(params, X, Y, masks=masks, fold=True) if not r.ok()]
    assert bad == ["dC"]  # only C's gradient passes through the mask


@pytest.mark.parametrize("V_,B_", [(27, 32), (300, 16)])  # the lecture's, and a vocabulary larger than the batch
def test_folded_and_plain_training_steps_agree_without_dropout(V_, B_, rng):
    params = random_params(V_, 4, 5, 16, seed=3, direct=True)
    X, Y = rng.integers(0, V_, size=(B_, 4)), rng.integers(0, V_, size=B_)
    loss, grads = model.loss_and_grads(params, X, Y, fold=False)
    loss_f, grads_f = model.loss_and_grads(params, X, Y, fold=True)
    assert abs(loss - loss_f) < 1e-13
    for k in grads:
        np.testing.assert_allclose(grads_f[k], grads[k], rtol=0, atol=1e-13 * np.abs(grads[k]).max(), err_msg=k)


def test_float32_stays_float32(rng):
    params = {k: v.astype(np.float32) for k, v in random_params(7, 3, 4, 8, seed=2, direct=True).items()}
    X, Y = rng.integers(0, 7, size=(6, 3)), rng.integers(0, 7, size=6)
    masks = {"C": layers.dropout_mask((3, 7, 4), 0.3, rng, np.float32)}
    _, grads = model.loss_and_grads(params, X, Y, masks=masks, fold=True)
    assert {g.dtype for g in grads.values()} == {np.dtype(np.float32)}


def test_each_path_refuses_the_other_s_mask(rng):
    params = random_params(7, 3, 4, 8)
    X, Y = rng.integers(0, 7, size=(6, 3)), rng.integers(0, 7, size=6)
    with pytest.raises(ValueError, match="'C' and 'h'.*with fold=True"):
        model.loss_and_grads(params, X, Y, masks={"embcat": np.ones((6, 12))}, fold=True)
    with pytest.raises(ValueError, match="'embcat' and 'h'"):
        model.loss_and_grads(params, X, Y, masks={"C": np.ones((3, 7, 4))})
    with pytest.raises(ValueError, match=r"not \(T, V, E\) = \(3, 7, 4\)"):
        model.loss_and_grads(params, X, Y, masks={"C": np.ones((6, 12))}, fold=True)


def test_a_split_batch_shares_the_step_s_mask_between_its_parts(rng):
    params = random_params(7, 3, 4, 8, seed=4)
    X, Y = rng.integers(0, 7, size=(40, 3)), rng.integers(0, 7, size=40)
    ix = rng.integers(0, 40, size=12)
    masks = {"C": layers.dropout_mask((3, 7, 4), 0.3, rng), "h": layers.dropout_mask((12, 8), 0.3, rng)}
    loss, grads = model.loss_and_grads(params, X[ix], Y[ix], masks=masks, fold=True)
    split = parallel.BatchSplit(3)
    try:
        loss_s, grads_s = split.loss_and_grads(params, X, Y, ix, masks=masks, fold=True)
    finally:
        split.close()
    assert abs(loss - loss_s) < 1e-13
    for k in grads:
        np.testing.assert_allclose(grads_s[k], grads[k], rtol=0, atol=1e-13, err_msg=k)


def test_masks_that_would_be_misread_are_refused_or_cast(rng):
    params = {k: v.astype(np.float32) for k, v in random_params(7, 3, 4, 8, seed=5).items()}
    X, Y = rng.integers(0, 7, size=(6, 3)), rng.integers(0, 7, size=6)
    M = layers.dropout_mask((3, 7, 4), 0.5, rng, np.float32)
    for bad in (M > 0, (M > 0).astype(np.int64), M.astype(np.complex64)):  # kept entries would go unscaled
        with pytest.raises(ValueError, match="floating point"):
            model.loss_and_grads(params, X, Y, masks={"C": bad}, fold=True)
    loss32, g32 = model.loss_and_grads(params, X, Y, masks={"C": M}, fold=True)
    loss64, g64 = model.loss_and_grads(params, X, Y, masks={"C": M.astype(np.float64)}, fold=True)
    assert {g.dtype for g in g64.values()} == {np.dtype(np.float32)} and loss32 == loss64


def test_what_fold_would_misread_is_refused(rng):
    params = random_params(7, 3, 4, 8)
    Y = rng.integers(0, 7, size=6)
    for X in (np.arange(3), np.array(2)):  # not (B, T)
        with pytest.raises(ValueError, match=r"X must be \(B, T\)"):
            model.loss_and_grads(params, X, Y, fold=True)
    for fold in ("yes", None, 1):
        with pytest.raises(TypeError, match="fold is True or False"):
            model.loss_and_grads(params, rng.integers(0, 7, size=(6, 3)), Y, fold=fold)


def test_the_memory_check_counts_the_tables_once_in_each_part_of_a_split_batch(monkeypatch):
    from mlp_lm import config, runtime, trainer
    V = 40_000  # with Wd, the tables alone are (T*V, V): 4.8e9 floats at T=3
    for cores, batch, parts in ((1, 32, 1), (4, 2048, 4)):  # 512 rows a part: split in four
        monkeypatch.setattr(runtime, "available_cores", lambda: cores)
        more = (trainer.memory_needed(config.Config(direct=True, n_hidden=16, batch_size=batch, fold=True), V)
                - trainer.memory_needed(config.Config(direct=True, n_hidden=16, batch_size=batch), V))
        assert parts * 2 * 3 * V * V * 4 <= more < parts * 2.01 * 3 * V * V * 4


def test_an_overflow_in_the_sparse_sum_raises_as_numpy_s_would():
    C = np.full((2, 1), 1e38, np.float32)  # each table row finite, their sum over three positions not
    W, X = np.full((3, 1), 3.0, np.float32), np.array([[0, 1, 0]])
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            C[X].reshape(1, -1).dot(W)  # the plain path
        with pytest.raises(FloatingPointError, match="folded first layer"):
            folded.fold_forward(C, X, W)
    with np.errstate(over="ignore"):
        assert np.isinf(folded.fold_forward(C, X, W)[0]).all()


def test_a_folded_run_too_big_for_the_machine_is_refused_before_it_starts(tmp_path, monkeypatch):
    from mlp_lm import runtime, train
    words = ["".join(chr(0x4E00 + 5 * i + j) for j in range(5)) for i in range(600)]  # 3,000 symbols
    (tmp_path / "wide.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    monkeypatch.setattr(runtime, "available_memory", lambda: 400 << 20)
    flags = ["--data", str(tmp_path / "wide.txt"), "--direct", "--n-hidden", "16", "--steps", "1", "--eval-every", "0"]
    with pytest.raises(runtime.NotEnoughMemory, match="or leave out --fold"):  # Wd's tables: 2 x (9,003, 3,001)
        train.main([*flags, "--fold", "--out", str(tmp_path / "folded")])
    assert not (tmp_path / "folded" / "model.npz").exists()
    assert train.main([*flags, "--out", str(tmp_path / "plain")]) == 0  # the plain path fits


def test_train_warns_when_folding_costs_more_than_it_saves(tmp_path, capsys):
    from mlp_lm import train
    from .conftest import SMALL
    assert train.main([*SMALL, "--fold", "--batch-size", "8", "--steps", "5", "--eval-every", "0",
                       "--out", str(tmp_path)]) == 0
    assert "warning: --fold builds tables of 27 rows" in capsys.readouterr().err


def test_fold_refuses_a_bias_the_plain_path_refuses(rng):
    # From a review: fold=True added a (1,) or (B, H) b1 by broadcasting and returned an (H,) db1,
    # the gradient of another parameter; the plain path's linear_forward refused both.
    params = random_params(7, 3, 4, 8)
    X, Y = rng.integers(0, 7, (6, 3)), rng.integers(0, 7, 6)
    for b1 in (np.array([0.3]), np.zeros((6, 8))):
        for fold in (False, True):
            with pytest.raises(ValueError, match=r"do not fit together: b1 is \((1,|6, 8)\), not \(8,\)"):
                model.loss_and_grads({**params, "b1": b1}, X, Y, fold=fold)


def test_the_sparse_one_hot_refuses_indices_it_would_misplace():
    # -1 landed in the position before's columns, V past the last column, and floats were truncated.
    for X in (np.array([[0, 5], [1, -1]]), np.array([[0, 5]]), np.array([[0.0, 1.5]]), np.array([True, False])):
        with pytest.raises(ValueError, match="X"):
            folded.contexts_onehot(X, 5, float)
    S = folded.contexts_onehot(np.array([[0, 4], [1, 2]]), 5, float).toarray()
    assert S.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 0, 0, 0, 1, 0, 0]]
