"""The paper's additions and the training recipe's: direct connections, dropout, label
smoothing and weight decay, each proven by finite differences in float64."""
import numpy as np
import pytest

from mlp_lm import layers, model, optim
from mlp_lm.finitediff import assert_close, compare, numerical_grad
from mlp_lm.gradcheck import check_model, random_params

SHAPES = [(27, 3, 2, 6, 8), (5, 1, 3, 4, 6), (11, 4, 2, 5, 7)]  # (V, T, E, H, B)
ALL_ROWS = ["dC", "dW1", "db1", "dW2", "db2", "dWd", "dlogits", "dh", "dhpreact", "dembcat", "demb"]


def batch(V, T, B, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, B)


@pytest.mark.parametrize("V,T,E,H,B", SHAPES)
def test_direct_connections_gradients(V, T, E, H, B):
    params = random_params(V, T, E, H, seed=V + T, direct=True)
    X, Y = batch(V, T, B, V)
    rows = check_model(params, X, Y)
    assert [r.name for r in rows] == ALL_ROWS
    for r in rows:
        assert_close(r)


@pytest.mark.parametrize("V,T,E,H,B", SHAPES)
def test_dropout_and_label_smoothing_gradients(V, T, E, H, B):
    params = random_params(V, T, E, H, seed=V * T, direct=True)
    X, Y = batch(V, T, B, T)
    rng = np.random.default_rng(V)
    masks = {"embcat": layers.dropout_mask((B, T * E), 0.3, rng), "h": layers.dropout_mask((B, H), 0.5, rng)}
    assert 0 < np.count_nonzero(masks["h"]) < masks["h"].size  # some dropped, some kept
    for r in check_model(params, X, Y, masks=masks, smoothing=0.1):
        assert_close(r)


def test_gradients_at_a_large_size_with_everything_on():
    params = random_params(27, 6, 8, 64, seed=11, direct=True)
    X, Y = batch(27, 6, 32, 11)
    rng = np.random.default_rng(11)
    masks = {"embcat": layers.dropout_mask((32, 48), 0.1, rng), "h": layers.dropout_mask((32, 64), 0.2, rng)}
    for r in check_model(params, X, Y, max_coords=20, seed=11, masks=masks, smoothing=0.05):
        assert_close(r)


def test_the_checker_catches_a_direct_path_that_is_not_added(monkeypatch):
    real = layers.linear_backward

    def forgets_dx_without_bias(dout, cache):
        dx, dW, db = real(dout, cache)
        return (dx * 0 if db is None else dx), dW, db  # the direct path's gradient to embcat is lost

    monkeypatch.setattr(layers, "linear_backward", forgets_dx_without_bias)
    params = random_params(7, 3, 2, 5, seed=3, direct=True)
    X, Y = batch(7, 3, 6, 3)
    rows = {r.name: r for r in check_model(params, X, Y)}
    assert not rows["dembcat"].ok() and not rows["dC"].ok()
    assert rows["dWd"].ok() and rows["dW1"].ok()


def test_the_checker_catches_dropout_without_its_mask(monkeypatch):
    monkeypatch.setattr(layers, "dropout_backward", lambda dout, mask: dout.copy())
    params = random_params(7, 3, 2, 5, seed=4)
    X, Y = batch(7, 3, 6, 4)
    masks = {"h": layers.dropout_mask((6, 5), 0.5, np.random.default_rng(4))}
    rows = {r.name: r for r in check_model(params, X, Y, masks=masks)}
    assert not rows["dhpreact"].ok() and not rows["dW1"].ok()


def test_the_checker_catches_smoothing_left_out_of_the_backward(monkeypatch):
    real = layers.softmax_cross_entropy_backward
    monkeypatch.setattr(layers, "softmax_cross_entropy_backward",
                        lambda dout, cache: real(dout, (*cache[:-1], 0.0)))  # smoothing is last
    params = random_params(7, 3, 2, 5, seed=5)
    X, Y = batch(7, 3, 6, 5)
    rows = {r.name: r for r in check_model(params, X, Y, smoothing=0.2)}
    assert not rows["dlogits"].ok() and not rows["db2"].ok()


def test_direct_init_and_count():
    p = model.init_params(27, 3, 10, 200, direct=True)
    assert p["Wd"].shape == (30, 27) and not p["Wd"].any()  # zero, as in the paper
    assert model.num_params(p) == 11897 + 30 * 27
    assert "Wd" not in model.init_params(27, 3, 10, 200)
    # Zero Wd: the same function as the network without it.
    X, _ = batch(27, 3, 5, 0)
    plain = {k: v for k, v in p.items() if k != "Wd"}
    np.testing.assert_array_equal(model.logits(p, X), model.logits(plain, X))


def test_dropout_mask_statistics():
    m = layers.dropout_mask((400, 500), 0.25, np.random.default_rng(0), np.float32)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert (m == 0).mean() == pytest.approx(0.25, abs=0.005)
    assert m.mean() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation
    assert layers.dropout_mask((3, 3), 0.0, np.random.default_rng(0)) is None


def test_label_smoothing_loss_is_the_cross_entropy_with_the_smoothed_target():
    rng = np.random.default_rng(1)
    z, Y, eps = rng.standard_normal((4, 6)), np.array([0, 5, 2, 2]), 0.15
    q = (1 - eps) * np.eye(6)[Y] + eps / 6
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss, _ = layers.softmax_cross_entropy_forward(z, Y, eps)
    assert float(loss) == pytest.approx(float(-(q * logp).sum(1).mean()), rel=1e-13)


@pytest.mark.parametrize("direct", [False, True])
def test_weight_decay_penalty_gradient(direct):
    params = random_params(7, 3, 2, 5, seed=6, direct=direct)
    _, grads = model.l2_penalty(params, 0.3)
    assert set(grads) == set(model.DECAYED) & set(params)  # biases are never decayed
    for k, p in params.items():
        num = numerical_grad(lambda v, k=k: model.l2_penalty({**params, k: v}, 0.3)[0], p)
        if k in grads:
            assert_close(compare("d" + k, grads[k], num, shape=p.shape))
        else:
            assert np.abs(num).max() < 1e-9


def test_sgd_with_weight_decay_follows_the_penalised_gradient():
    # One SGD step must move each tensor along -d(loss + penalty): checked against finite differences.
    params = random_params(7, 3, 2, 5, seed=7, direct=True)
    X, Y = batch(7, 3, 6, 7)
    lam, lr = 0.05, 0.1
    _, grads = model.loss_and_grads(params, X, Y)
    stepped = {k: v.copy() for k, v in params.items()}
    optim.SGD(weight_decay=lam).step(stepped, grads, lr)
    for k, p in params.items():
        total = numerical_grad(lambda v, k=k: model.loss_and_grads({**params, k: v}, X, Y)[0]
                               + model.l2_penalty({**params, k: v}, lam)[0], p)
        assert_close(compare("d" + k, (p - stepped[k]) / lr, total, shape=p.shape))
    assert not np.allclose(stepped["W1"], params["W1"] - lr * grads["W1"])  # the decay did something
    np.testing.assert_allclose(stepped["b1"], params["b1"] - lr * grads["b1"], rtol=1e-15)  # not on biases
