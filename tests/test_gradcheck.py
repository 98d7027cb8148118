"""The checker itself must catch a wrong gradient, and say where."""
import numpy as np
import pytest

from mlp_lm import gradcheck, layers
from mlp_lm.gradcheck import assert_close, compare, directional_grad, numerical_grad


def test_numerical_grad_of_known_function():
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    num = numerical_grad(lambda a: float(np.sum(np.sin(a) * a)), x)
    np.testing.assert_allclose(num.reshape(x.shape), np.cos(x) * x + np.sin(x), rtol=1e-10)


def test_numerical_grad_on_sampled_coordinates():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    coords = np.array([7, 0, 11])
    num = numerical_grad(lambda a: float(np.sum(a**3)), x, coords)
    np.testing.assert_allclose(num, 3 * x.reshape(-1)[coords] ** 2, rtol=1e-10)


def test_directional_grad():
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    assert directional_grad(lambda a: float(np.sum(np.exp(a))), x, v) == pytest.approx(np.exp(x) @ v, rel=1e-10)


def test_assert_close_names_tensor_and_worst_entry():
    analytic = np.array([[1.0, 2.0], [3.0, 4.0]])
    numeric = analytic.copy()
    numeric[1, 0] += 0.01
    cmp = compare("dW9", analytic, numeric)
    assert cmp.worst == (1, 0)
    with pytest.raises(AssertionError, match=r"dW9 \(2, 2\).*worst entry dW9\[1, 0\]"):
        assert_close(cmp)


def test_rel_error():
    assert gradcheck.rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert gradcheck.rel_error([1.0], [3.0]) == pytest.approx(0.5)


def test_check_model_catches_a_wrong_tanh_backward(monkeypatch):
    # A classic slip: 1 - tanh instead of 1 - tanh^2.
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, out: dout * (1.0 - out))
    params = gradcheck.random_params(5, 2, 3, 4, seed=1)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 5, (4, 2)), rng.integers(0, 5, 4)
    rows = {r.name: r for r in gradcheck.check_model(params, X, Y)}
    assert not rows["dhpreact"].ok() and not rows["dW1"].ok() and not rows["dC"].ok()
    assert rows["dW2"].ok() and rows["dlogits"].ok()  # downstream of the slip stays right


def test_check_model_catches_dropped_repeated_indices(monkeypatch):
    def wrong_embedding_backward(demb, cache):
        X, shape = cache
        dC = np.zeros(shape)
        dC[X] += demb  # drops repeated indices
        return dC

    monkeypatch.setattr(layers, "embedding_backward", wrong_embedding_backward)
    params = gradcheck.random_params(4, 3, 2, 5, seed=2)
    X = np.array([[1, 1, 2], [0, 1, 3], [2, 2, 2]])
    Y = np.array([0, 3, 1])
    rows = {r.name: r for r in gradcheck.check_model(params, X, Y)}
    assert not rows["dC"].ok()
    assert rows["demb"].ok()


def test_cli_prints_a_passing_table(capsys):
    assert gradcheck.main(["--vocab-size", "5", "--block-size", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for name in ("dC", "dW1", "db1", "dW2", "db2", "dlogits", "dh", "dhpreact", "dembcat", "demb"):
        assert f"\n{name} " in "\n" + out
    assert "10 of 10 gradients within 1e-06" in out


def test_cli_rejects_a_zero_size(capsys):
    with pytest.raises(SystemExit) as e:
        gradcheck.main(["--n-hidden", "0"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_shapes_are_compared_before_values():
    # A (1, H) gradient for an (H,) bias has the right numbers and the wrong shape: it must fail.
    db = np.array([[0.5, -1.0, 2.0]])
    cmp = compare("db1", db, db.reshape(-1), shape=(3,))
    assert not cmp.ok() and "shape (1, 3)" in cmp.problem
    with pytest.raises(AssertionError, match=r"shape \(1, 3\) but its input has \(3,\)"):
        assert_close(cmp)
    assert compare("db1", db.reshape(-1), db.reshape(-1), shape=(3,)).ok()


def test_an_all_zero_gradient_cannot_pass():
    cmp = compare("dW", np.zeros((2, 2)), np.zeros(4))
    assert not cmp.ok() and "proves nothing" in cmp.problem
    # ... and where the numerical one is not zero, the analytic one is simply wrong (not "use other inputs")
    cmp = compare("dW", np.zeros((2, 2)), np.ones(4))
    assert not cmp.ok() and "misses it" in cmp.problem and "proves nothing" not in cmp.problem


def test_the_command_says_which_flags_give_zero_gradients(capsys):
    from mlp_lm import gradcheck
    code = gradcheck.main(["--dropout", "0.99", "--batch-size", "2", "--seed", "0"])
    out = capsys.readouterr().out
    assert code == 1 and "proves nothing" in out and "another --seed, or a smaller --dropout" in out


def test_judging_is_relative_to_the_gradient_scale():
    # The same absolute error, 1e-7: negligible beside gradients of size 1, fatal beside 1e-6.
    big = np.array([1.0, -0.5])
    assert compare("big", big, big + 1e-7).ok()
    tiny = np.array([1e-6, -5e-7])
    cmp = compare("tiny", tiny, tiny + 1e-7)
    assert cmp.ratio == pytest.approx(0.1) and not cmp.ok()


def test_scipy_convergence_status_is_reported():
    x = np.array([0.3, -1.2])
    num, status = numerical_grad(lambda a: float(np.sum(a**2)), x, return_status=True)
    assert status.tolist() == [0, 0]
    cmp = compare("dx", 2 * x, num, status=np.array([0, -2]))
    assert cmp.unconverged == 1 and "did not converge" in cmp.row()


def test_check_model_reports_a_missing_gradient(monkeypatch):
    real = gradcheck.loss_and_grads

    def drops_wd(*a, **k):
        loss, grads, inter = real(*a, **k)
        grads.pop("Wd")
        return loss, grads, inter

    monkeypatch.setattr(gradcheck, "loss_and_grads", drops_wd)
    params = gradcheck.random_params(5, 2, 3, 4, seed=1, direct=True)
    rows = {r.name: r for r in gradcheck.check_model(params, np.array([[0, 1], [2, 3]]), np.array([4, 0]))}
    assert not rows["dWd"].ok() and "no gradient" in rows["dWd"].problem
