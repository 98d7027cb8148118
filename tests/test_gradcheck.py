"""The checker itself must catch a wrong gradient, and say where."""
import re

import numpy as np
import pytest

from mlp_lm import finitediff, gradcheck, layers, model, modelcheck, onehot
from mlp_lm.cli import UsageError
from mlp_lm.finitediff import assert_close, compare, directional_grad, numerical_grad


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


def test_a_comparison_too_tight_for_its_precision_says_so():
    # From a review by an engineer holding their code against ours: a float32 gradient held to 1e-12
    # failed with a ratio of 3e-8 and nothing to say that float32's rounding was the reason.
    ours = np.random.default_rng(0).standard_normal((3, 4))
    hint = r"float32's rounding alone can be this far off \(its epsilon is 1e-07.*compare in float64 \(against"
    with pytest.raises(AssertionError, match=hint):
        assert_close(compare("dW", ours.astype(np.float32), ours, shape=ours.shape), tol=1e-12)
    with pytest.raises(AssertionError, match=hint):  # either side: the less precise one is named
        assert_close(compare("dW", ours, (ours * (1 + 3e-6)).astype(np.float32), shape=ours.shape), tol=1e-6)
    with pytest.raises(AssertionError, match=r"float16's rounding alone can be this far off \(its epsilon is 1e-03.*float64$"):
        assert_close(compare("dW", ours, ours.astype(np.float16), shape=ours.shape), tol=1e-6)
    assert_close(compare("dW", ours.astype(np.float32), ours, shape=ours.shape), tol=1e-4)  # held as it should be
    wrong = ours.copy()
    wrong[0, 0] += 1.0
    with pytest.raises(AssertionError) as e:  # a float64 comparison that fails has no such excuse
        assert_close(compare("dW", wrong, ours, shape=ours.shape), tol=1e-12)
    assert "rounding" not in str(e.value)
    for tol in (1e-4, 1e-12):  # nor does a float32 one off by far more than its rounding, however tight the tolerance
        with pytest.raises(AssertionError) as e:
            assert_close(compare("dW", wrong.astype(np.float32), ours, shape=ours.shape), tol=tol)
        assert "rounding" not in str(e.value)
    with pytest.raises(AssertionError, match="float32's rounding"):  # in either byte order
        assert_close(compare("dW", ours.astype(">f4"), ours, shape=ours.shape), tol=1e-12)


def test_rel_error():
    assert finitediff.rel_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert finitediff.rel_error([1.0], [3.0]) == pytest.approx(0.5)


def test_check_model_catches_a_wrong_tanh_backward(monkeypatch):
    # A classic slip: 1 - tanh instead of 1 - tanh^2.
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, out: dout * (1.0 - out))
    params = gradcheck.random_params(5, 2, 3, 4, seed=1)
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 5, (4, 2)), rng.integers(0, 5, 4)
    rows = {r.name: r for r in gradcheck.check_model(params, X, Y)}
    assert not rows["dhpreact"].ok() and not rows["dW1"].ok() and not rows["dC"].ok()
    assert rows["dW2"].ok() and rows["dlogits"].ok()  # between the loss and the slip: still right


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
    assert "10 of 10 gradients within 1e-09" in out


def test_cli_rejects_a_zero_size(capsys):
    with pytest.raises(SystemExit) as e:
        gradcheck.main(["--n-hidden", "0"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_refuses_sizes_too_large_to_check_entry_by_entry_and_says_how_to_sample():
    # From an engineer's review: the refusal pointed at the tests, not at what checks larger sizes.
    with pytest.raises(UsageError, match=r"keep it under 20,000; .*check_model\(params, X, Y, max_coords=N\)"):
        gradcheck.main(["--n-hidden", "2000"])
    params = gradcheck.random_params(7, 3, 4, 2000, seed=0)  # and what it says works at that size
    rng = np.random.default_rng(0)
    rows = gradcheck.check_model(params, rng.integers(0, 7, (6, 3)), rng.integers(0, 7, 6), max_coords=4)
    assert len(rows) == 10 and all(r.ok() for r in rows) and {r.compared for r in rows} == {4}


def test_a_nan_numerical_gradient_says_to_take_a_smaller_first_step():
    # From an engineer's review: log at 0.05 with the first step 0.1 is evaluated at -0.05; the message
    # blamed float32 and tolerances, and never named initial_step.
    x = np.array([0.05, 0.5, 2.0])
    with np.errstate(invalid="ignore", divide="ignore"):
        num = numerical_grad(lambda w: float(np.log(w).sum()), x)
    cmp = compare("dx", 1 / x, num, shape=x.shape)
    with pytest.raises(AssertionError, match=r"numerical gradient is nan there: .*a smaller initial_step") as e:
        assert_close(cmp)
    assert "float32" not in str(e.value) and "tolerances=dict" not in str(e.value)
    num = numerical_grad(lambda w: float(np.log(w).sum()), x, initial_step=1e-3)
    assert_close(compare("dx", 1 / x, num, shape=x.shape))  # the advice works
    # an analytic gradient that is nan or inf itself is named first: no first step will mend it
    for bad in (np.nan, np.inf):
        analytic = 1 / x
        analytic[0] = bad
        with pytest.raises(AssertionError, match=f"the analytic gradient is {bad} there$"):
            assert_close(compare("dx", analytic, num, shape=x.shape))


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
    # A check that proves nothing found nothing wrong either: exit 2, a refusal, not 1, a gradient found wrong
    # (an engineer's review: a script could not tell the two apart).
    with pytest.raises(UsageError, match=r"^dC, dW1, .* are all zeros, or rounding noise, at the inputs drawn, so the check proves "
                                         r"nothing for them: try another --seed, or a smaller --dropout"):
        gradcheck.main(["--dropout", "0.99", "--batch-size", "2", "--seed", "0"])
    assert "3 of 10 gradients within" in capsys.readouterr().out  # the table is still shown


def test_a_wrong_gradient_beside_unproven_ones_still_fails_the_check(monkeypatch, capsys):
    def twice(dout, cache):  # every linear layer's gradients doubled: wrong wherever they are not zero
        return tuple(d * 2 if d is not None else None for d in real(dout, cache))
    real = layers.linear_backward
    monkeypatch.setattr(layers, "linear_backward", twice)
    assert gradcheck.main(["--dropout", "0.99", "--batch-size", "2", "--seed", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "proves nothing" in out  # the unproven rows are named, not the verdict


def test_the_commands_batch_can_show_the_slips_it_is_for(monkeypatch, capsys):
    # From an engineer's review: at the default sizes every symbol was in some context, so a dC that gives an
    # unseen symbol a gradient passed; the contexts now leave out the last symbol, whose row must be exactly 0.
    X, Y = gradcheck.check_batch(6, 3, 7, np.random.default_rng(0))
    assert 6 not in X and np.unique(X).size < X.size and set(np.unique(Y)) <= set(range(7))
    real = layers.embedding_backward

    def unseen_rows_filled(demb, cache):
        dC = real(demb, cache)
        dC[~dC.any(axis=1)] = 1e-3  # rows no example looked up get a (wrong) gradient
        return dC
    monkeypatch.setattr(layers, "embedding_backward", unseen_rows_filled)
    assert gradcheck.main([]) == 1
    failed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.endswith(" FAIL")]
    assert failed == ["dC"]
    rows = {r.name: r for r in gradcheck.check_model(gradcheck.random_params(7, 3, 4, 8), X, Y)}
    assert not rows["dC"].ok() and rows["demb"].ok()


def test_the_command_says_what_its_batch_cannot_show(capsys):
    assert gradcheck.main(["--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert "this batch cannot show a missing 1/B (a batch of one" in out
    assert gradcheck.main(["--batch-size", "2", "--block-size", "1", "--vocab-size", "20"]) == 0
    out = capsys.readouterr().out
    assert "cannot show the dC[X] += demb slip" in out and "1/B" not in out
    assert gradcheck.main([]) == 0
    assert "cannot show" not in capsys.readouterr().out  # the default batch shows them all
    assert any("no context holds" in n for n in gradcheck.blind_spots(np.array([[0, 1], [1, 0]]), 2))
    assert gradcheck.blind_spots(np.array([[0, 1], [1, 0]]), 3) == []
    # from Python, the advice is about the batch, not the command's flags (an engineer's review: "use a
    # --vocab-size of 3 or more" for a batch of their own, over 27 symbols)
    every_symbol = np.arange(27).reshape(9, 3)
    notes = gradcheck.blind_spots(every_symbol[:1], 27) + gradcheck.blind_spots(every_symbol, 27)
    assert notes == ["a missing 1/B (a batch of one: its mean is its sum): check on 2 examples or more",
                     "the dC[X] += demb slip (numpy adds a repeated index once, and no symbol repeats here): check on "
                     "contexts in which some symbol appears twice (more examples, or a longer context)",
                     "the dC[X] += demb slip (numpy adds a repeated index once, and no symbol repeats here): check on "
                     "contexts in which some symbol appears twice (more examples, or a longer context)",
                     "a dC that gives a symbol no context holds a gradient (every symbol is in some context): check on "
                     "contexts that leave some symbol out (check_batch draws such contexts from V = 3 up)"]
    assert not any("--" in n for n in notes)


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


def test_a_failure_blames_scipy_only_where_its_worst_entry_did_not_converge():
    # From an engineer's trial: a dC with the dC[X] += demb slip, checked at scipy's default tolerances,
    # failed with "scipy did not converge at 8 of 28 coordinate(s): f is noisy..." where the worst entry had
    # converged: only the zero rows of the symbols the batch never uses had not. The slip was the cause.
    x = np.array([0.3, -1.2, 0.7])
    num = 2 * x
    wrong = np.array([0.6, -2.4, 2.0])  # the last entry is a real error
    cmp = compare("dx", wrong, num, status=np.array([-2, 0, 0]))  # the first did not converge, the worst did
    assert cmp.unconverged == 1 and not cmp.unconverged_at_worst and "did not converge" in cmp.row()
    with pytest.raises(AssertionError) as e:
        assert_close(cmp)
    assert "worst entry dx[2]" in str(e.value) and "scipy" not in str(e.value), str(e.value)
    cmp = compare("dx", wrong, num, status=np.array([0, 0, -2]))  # the worst entry itself did not converge
    assert cmp.unconverged_at_worst
    with pytest.raises(AssertionError, match=r"scipy did not converge there, and at 1 of 3 coordinate\(s\) in all"):
        assert_close(cmp)
    # with coords, the status is of the entries compared, in their order
    cmp = compare("dx", np.array([0.6, 9.0, -2.4, 2.0]), np.array([0.6, -2.4, 1.4]), coords=[0, 2, 3],
                  status=np.array([0, 0, -2]))
    assert cmp.worst == (3,) and cmp.unconverged_at_worst


def test_check_model_reports_a_missing_gradient():
    def drops_wd(*a, **k):
        loss, grads, inter = model.loss_and_grads(*a, **k)
        grads.pop("Wd")
        return loss, grads, inter

    params = gradcheck.random_params(5, 2, 3, 4, seed=1, direct=True)
    rows = {r.name: r for r in gradcheck.check_model(params, np.array([[0, 1], [2, 3]]), np.array([4, 0]),
                                                      loss_and_grads=drops_wd)}
    assert not rows["dWd"].ok() and "no gradient" in rows["dWd"].problem


def _someone_elses_loss_and_grads(params, X, Y, return_intermediates=True, slip=False):
    """The lecture's model with a backward of its own, as an engineer checking their code would write
    it: independent of layers.py. slip: tanh's derivative taken from the pre-activation."""
    C, W1, b1, W2, b2 = (params[k] for k in ("C", "W1", "b1", "W2", "b2"))
    B = len(Y)
    emb = C[X]
    embcat = emb.reshape(B, -1)
    hpre = embcat @ W1 + b1
    h = np.tanh(hpre)
    logits = h @ W2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(B), Y]).mean()
    dlogits = p.copy()
    dlogits[np.arange(B), Y] -= 1
    dlogits /= B
    dh = dlogits @ W2.T
    dhpre = dh * (1 - (hpre if slip else h) ** 2)
    dembcat = dhpre @ W1.T
    dC = np.zeros_like(C)
    np.add.at(dC, X, dembcat.reshape(emb.shape))
    grads = {"C": dC, "W1": embcat.T @ dhpre, "b1": dhpre.sum(0), "W2": h.T @ dlogits, "b2": dlogits.sum(0)}
    inter = {"logits": dlogits, "h": dh, "hpreact": dhpre, "embcat": dembcat, "emb": dembcat.reshape(emb.shape)}
    return (loss, grads, inter) if return_intermediates else (loss, grads)


def test_check_model_checks_someone_elses_gradient_code():
    # From an engineer's review: the whole table for their own code, without patching ours. Right, it passes;
    # with a slip in tanh's backward, the tensors after it in the backward pass (dlogits, dh, dW2, db2) pass and
    # the first that fails going backward is dhpreact, where the slip is.
    params = gradcheck.random_params(5, 2, 3, 4, seed=1)
    X, Y = np.array([[0, 1], [2, 3], [4, 4]]), np.array([4, 0, 1])
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=_someone_elses_loss_and_grads)
    assert [r.name for r in rows] == ["dC", "dW1", "db1", "dW2", "db2", "dlogits", "dh", "dhpreact", "dembcat", "demb"]
    assert all(r.ok() for r in rows)
    slipped = lambda *a, **k: _someone_elses_loss_and_grads(*a, **k, slip=True)  # noqa: E731
    failed = {r.name for r in gradcheck.check_model(params, X, Y, loss_and_grads=slipped) if not r.ok()}
    assert failed == {"dC", "dW1", "db1", "dhpreact", "dembcat", "demb"}
    # (loss, grads) alone: the parameters are checked, and no intermediate is asked for
    params_only = lambda *a, **k: _someone_elses_loss_and_grads(*a, **k, slip=True)[:2]  # noqa: E731
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=params_only)
    assert [r.name for r in rows if not r.ok()] == ["dC", "dW1", "db1"] and len(rows) == 5
    with pytest.raises(ValueError, match=r"must return \(loss, grads, intermediates\) or \(loss, grads\)"):
        gradcheck.check_model(params, X, Y, loss_and_grads=lambda *a, **k: 1.0)


def test_a_numerical_gradient_in_its_input_s_shape_holds_the_analytic_one_to_it():
    # dW for a (3, 5) W handed back as (5, 3): the same numbers, the wrong shape.
    dW = np.arange(1.0, 16.0).reshape(3, 5)
    cmp = compare("dW", dW.reshape(5, 3), dW)
    assert not cmp.ok() and "shape (5, 3) but the numerical one has (3, 5)" in cmp.problem
    assert compare("dW", dW, dW).ok() and compare("dW", dW, dW.reshape(-1)).ok()  # flat, as numerical_grad gives it


def test_a_wrong_entry_left_out_of_the_coordinates_cannot_hide_the_others():
    # Analytic 1.5 times the truth everywhere, and one huge entry that is not among those checked:
    # judged against that entry, the checked ones would look right.
    truth = np.linspace(1.0, 2.0, 10)
    analytic = 1.5 * truth
    analytic[9] = 1e9
    coords = np.arange(9)
    cmp = compare("dx", analytic, truth[coords], coords)
    assert not cmp.ok() and cmp.ratio == pytest.approx(1 / 3, rel=1e-3)


def test_check_model_on_sampled_coordinates_always_checks_the_largest_entry():
    # A slip in one entry of dW1 (6 of 24 sampled would rarely hit it) is caught because it is the
    # largest: the entry that sets the scale is always among those checked.
    def one_entry_off(*a, **k):
        loss, grads, inter = model.loss_and_grads(*a, **k)
        i = np.unravel_index(np.argmax(np.abs(grads["W1"])), grads["W1"].shape)
        grads["W1"][i] *= 1.01
        return loss, grads, inter

    params = gradcheck.random_params(5, 2, 3, 4, seed=1)
    X, Y = np.array([[0, 1], [2, 3], [4, 4]]), np.array([4, 0, 1])
    for seed in range(5):
        rows = {r.name: r for r in gradcheck.check_model(params, X, Y, max_coords=6, seed=seed,
                                                          loss_and_grads=one_entry_off)}
        assert not rows["dW1"].ok() and rows["dW2"].ok()


def test_a_gradient_with_fewer_entries_than_its_input_is_reported_not_a_crash():
    for coords in (None, np.array([0, 2])):
        numerical = np.ones(3) if coords is None else np.ones(2)
        cmp = compare("db", np.ones(2), numerical, coords, shape=(3,))
        assert not cmp.ok() and "shape (2,) but its input has (3,)" in cmp.problem


def test_the_checkers_own_arguments_are_refused_where_they_would_be_read_wrongly():
    with pytest.raises(ValueError, match="one shape"):
        finitediff.rel_error([1, 2, 3], [[1], [2], [3]])  # was 0.5: every pair compared
    with pytest.raises(ValueError, match="one shape"):
        finitediff.rel_error([2.0], [2.0, 2.0])  # was 0.0
    with pytest.raises(ValueError, match="complex"):
        finitediff.compare("dx", np.array([1 + 5j, 2]), np.array([1.0, 2.0]), shape=(2,))  # was ok()
    x = np.array([1.0, 2.0, 3.0])
    for coords in ([1.9], [-1], [3]):  # 1.9 was read as 1; -1 as the last entry, then refused by compare
        with pytest.raises(ValueError, match="coords must be flat indices in 0..2"):
            finitediff.numerical_grad(lambda v: float(np.sum(v**2)), x, coords)
    assert finitediff.numerical_grad(lambda v: float(np.sum(v**2)), x, [2]) == pytest.approx([6.0])
    with pytest.raises(ValueError, match="max_coords"):
        gradcheck.check_model(gradcheck.random_params(7, 3, 4, 8), np.zeros((2, 3), np.int64), np.zeros(2, np.int64),
                              max_coords=0)  # was an IndexError


def test_the_finite_differences_refuse_a_step_or_a_function_value_they_would_misread():
    # From a review by an engineer checking their own code: each of these gave NaNs, zeros scipy
    # called converged, or numpy's "Error setting single item of array".
    x, loss = np.array([0.3, 0.5]), lambda v: float(np.tanh(v).sum())
    for step in (0, -0.1, np.nan, np.inf, None, True):
        with pytest.raises(ValueError, match="initial_step must be a finite number above 0"):
            numerical_grad(loss, x, initial_step=step)
        with pytest.raises(ValueError, match="initial_step must be a finite number above 0"):
            directional_grad(loss, x, np.ones(2), initial_step=step)
    for f in (np.tanh, lambda v: None, lambda v: 1j, lambda v: "1.0", lambda v: np.ones(1)):
        with pytest.raises(ValueError, match="f must return one real number"):
            numerical_grad(f, x)
    for v in (np.array([1j, 0]), np.ones(3)):  # complex was a warning; (3,) broadcast against (2,)
        with pytest.raises(ValueError, match="complex|one shape"):
            directional_grad(loss, x, v)
    assert numerical_grad(lambda v: np.tanh(v).sum(), x, initial_step=1) == pytest.approx(
        1 - np.tanh(x) ** 2, rel=1e-9)  # and a numpy scalar is a real number


def test_the_independent_forward_s_loss_is_its_own_and_agrees_with_ours(monkeypatch):
    # check_model holds loss_and_grads against _forward_with's loss: that loss must not be layers.py's,
    # or a slip in the cross-entropy or its label smoothing would sit on both sides and cancel.
    rng = np.random.default_rng(0)
    logits, Y = 5 * rng.standard_normal((6, 7)), rng.integers(0, 7, 6)
    for eps in (0.0, 0.1):
        assert modelcheck._mean_nll(logits, Y, eps) == pytest.approx(
            float(layers.softmax_cross_entropy_forward(logits, Y, eps)[0]), rel=1e-13)
    params = gradcheck.random_params(7, 3, 4, 8)
    X = rng.integers(0, 7, (6, 3))
    monkeypatch.setattr(layers, "softmax_cross_entropy_forward", lambda *a: (_ for _ in ()).throw(
        AssertionError("the check's own loss used layers.py's")))
    assert np.isfinite(modelcheck._loss_from("W2", params["W2"], params, X, Y, smoothing=0.1))


def test_random_params_refuses_what_init_params_refuses():
    with pytest.raises(TypeError, match="direct is True or False"):
        gradcheck.random_params(7, 3, 4, 8, direct="no")  # was a model with Wd
    for V in (0, 1.5, -2):
        with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
            gradcheck.random_params(V, 3, 4, 8)  # 0 gave empty arrays


def _tiny_problem():
    params = gradcheck.random_params(7, 3, 4, 8, seed=0)
    rng = np.random.default_rng(0)
    return params, rng.integers(0, 7, (6, 3)), rng.integers(0, 7, 6)


def test_numerical_grad_refuses_a_loss_too_coarse_or_too_random_to_difference():
    # From an engineer's review: both gave a correct gradient "off" by 3e-2 and 6e4, with no word of why.
    params, X, Y = _tiny_problem()

    def loss_of_W1(w, dtype=np.float64, masks=None):
        p = {k: v.astype(dtype) for k, v in params.items()}
        p["W1"] = w.reshape(params["W1"].shape).astype(dtype)
        return model.loss_and_grads(p, X, Y, masks=masks)[0]

    w = params["W1"]
    for f in (lambda w_: np.float32(loss_of_W1(w_, np.float32)), lambda w_: np.array(loss_of_W1(w_), np.float16)):
        for check in (lambda: numerical_grad(f, w), lambda: directional_grad(f, w, np.ones_like(w))):
            with pytest.raises(ValueError, match=r"f returned a float(32|16) loss.*compute it in float64"):
                check()
    rng = np.random.default_rng(1)
    fresh_mask = lambda w_: loss_of_W1(w_, masks={"h": layers.dropout_mask((6, 8), 0.3, rng)})  # noqa: E731
    for check in (lambda: numerical_grad(fresh_mask, w), lambda: directional_grad(fresh_mask, w, np.ones_like(w))):
        with pytest.raises(ValueError, match=r"f gave two values at the same point .* draw it once, outside f"):
            check()
    fixed = layers.dropout_mask((6, 8), 0.3, np.random.default_rng(2))
    _, grads = model.loss_and_grads(params, X, Y, masks={"h": fixed})
    assert_close(compare("dW1", grads["W1"], numerical_grad(lambda w_: loss_of_W1(w_, masks={"h": fixed}), w),
                         shape=w.shape))  # the same mask each call: fine
    assert np.isnan(numerical_grad(lambda w_: float("nan"), w[:1, :1])).all()  # NaN twice is the same NaN, not noise


def test_a_coarse_loss_is_refused_where_scipy_converged_to_0_and_dyadic_float64_losses_pass():
    # On a machine whose BLAS rounded the tiny model's loss otherwise, a bfloat16 loss along v gave scipy steps that
    # all landed on one value below some size: two estimates of 0 agreed, and directional_grad returned 0.0,
    # "converged", where the derivative is 1.62. Whether scipy converges on such a staircase turns on its own
    # rounding (its weights go through BLAS: with AVX-512 kernels this one did not converge), so either is refused.
    def bfloat16(v):
        return float((np.array([v], np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)[0])

    scipy_said = r", and scipy( did not converge|'s derivative is exactly 0) (along v|at 1 of 1 coordinate\(s\))"
    x, v = np.zeros(1), np.ones(1)
    f = lambda y: bfloat16(2.2 + 3.0 * np.sin(1 + y[0]))  # noqa: E731
    said = rf"^f's values are all bfloat16 numbers \(the \d+ different ones it gave\){scipy_said}[^:]*: f computes "
    with pytest.raises(ValueError, match=said):
        directional_grad(f, x, v)
    with pytest.raises(ValueError, match=said):
        numerical_grad(f, x)
    # A reviewer of a first version, which decided by the values alone: float64 losses of dyadic numbers give
    # float16 numbers only (10 * 0.1 = 1.0), and were refused; scipy converges on them, to the right answer
    w = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(numerical_grad(lambda y: float(10 * np.sum(y)), w), [10, 10, 10], rtol=1e-12)
    np.testing.assert_allclose(numerical_grad(lambda y: float(5 * np.sum(y)), np.zeros(3)), [5, 5, 5], rtol=1e-12)
    np.testing.assert_allclose(numerical_grad(lambda y: float(np.sum((10 * y) ** 2)), w), 200 * w, rtol=1e-9)
    assert directional_grad(lambda y: float(np.sum(y)), w, np.full(3, 10.0)) == pytest.approx(30.0, rel=1e-12)
    for step in (0.75, 1.5, 3.0, 0.375):
        np.testing.assert_allclose(numerical_grad(lambda y: float(np.sum(y)), w, initial_step=step), [1, 1, 1],
                                   rtol=1e-12)
    # the float64 bfloat16 function's own derivative passes, to scipy's accuracy
    assert directional_grad(lambda y: 2.2 + 3.0 * np.sin(1 + y[0]), x, v) == pytest.approx(3.0 * np.cos(1), rel=1e-9)


def test_numerical_grad_refuses_a_float32_loss_returned_as_a_float():
    # From an engineer's review: float(a float32 loss) got past the dtype check, and a correct dW1 then failed
    # as "off", scipy unconverged, with a float32 loss only one of the causes its message guessed at
    params, X, Y = _tiny_problem()
    w = params["W1"]

    def loss_of_W1(w_, dtype):
        p = {k: v.astype(dtype) for k, v in params.items()}
        p["W1"] = w_.reshape(w.shape).astype(dtype)
        return float(model.loss_and_grads(p, X, Y)[0])

    def bfloat16(w_):  # the float32 loss cut to bfloat16's 8 bits of significand, as a torch bfloat16's .item()
        bits = np.array([loss_of_W1(w_, np.float32)], np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
        return float(bits.view(np.float32)[0])

    for check in (lambda f: numerical_grad(f, w), lambda f: directional_grad(f, w, np.ones_like(w))):
        for f, name, eps in ((lambda w_: loss_of_W1(w_, np.float32), "float32", "1e-7"),
                             (lambda w_: float(np.float16(loss_of_W1(w_, np.float32))), "float16", "1e-3"),
                             (bfloat16, "bfloat16", "8e-3")):
            with pytest.raises(ValueError, match=rf"f's values are all {name} numbers \(the [\d,]+ different ones it "
                                                 rf"gave\)(, and scipy( did not converge|'s derivative is exactly 0) "
                                                 rf"(at \d+ of \d+ coordinate\(s\)|along v)[^:]*)?: f computes the loss "
                                                 rf"in {name} .* known only to about {eps} of its size, .*compute it in "
                                                 rf"float64$"):
                check(f)
        check(lambda w_: loss_of_W1(w_, np.float64))  # the same loss in float64 passes
    _, grads = model.loss_and_grads(params, X, Y)
    assert_close(compare("dW1", grads["W1"], numerical_grad(lambda w_: loss_of_W1(w_, np.float64), w), shape=w.shape))
    loss32 = lambda p: float(model.loss_and_grads({k: v.astype(np.float32) for k, v in p.items()}, X, Y)[0])  # noqa: E731
    with pytest.raises(ValueError, match=r"^varying params\['C'\], with f your loss: f's values are all float32"):
        finitediff.check_gradients(loss32, params, grads)  # it says which tensor it was varying


def test_a_float64_loss_whose_values_are_float32_numbers_is_let_be():
    # From a review of the check above: at steps that are powers of two, a float64 loss of float32 data can give
    # only float32 numbers; one coordinate it does not read (a zero derivative, which scipy seldom calls
    # converged) then had it refused as float32, and a kink near the point too
    ones = np.ones(4)
    with np.errstate(over="raise"):  # a loss past float32's range is cast without a warning
        for step in (1.0, 0.5, 2.0 ** -10):
            assert np.allclose(numerical_grad(lambda v: float((v[:3] ** 3).sum()), ones, initial_step=step),
                               [3, 3, 3, 0], rtol=1e-12, atol=1e-9)
            numerical_grad(lambda v: float(np.abs(v).sum()), np.array([2.0 ** -14, 1, 3]), initial_step=step)
            assert np.isclose(directional_grad(lambda v: float((v[:3] ** 3).sum()), ones, ones, initial_step=step), 9)
        numerical_grad(lambda v: float(1e300 * np.abs(v).sum()), np.array([1e-3, 1, 3]))
    # and a step that is no power of two gives no float32 numbers of a float64 loss, converged or not
    numerical_grad(lambda v: float(np.abs(v).sum()), np.array([1e-3, 1, 3]))


def test_a_tiny_gradient_needs_an_absolute_tolerance_and_the_failure_says_so():
    # From an engineer's review: with C scaled by 1e-5, dW1's largest entry is 3e-6 against a loss near 2; scipy,
    # asked for a relative tolerance alone, halved its steps until rounding took over, and a correct dW1 failed.
    params, X, Y = _tiny_problem()
    params["C"] = params["C"] * 1e-5
    _, grads = model.loss_and_grads(params, X, Y)

    def loss_of_W1(w):
        return model.loss_and_grads({**params, "W1": w.reshape(params["W1"].shape)}, X, Y)[0]

    num, status = numerical_grad(loss_of_W1, params["W1"], return_status=True)
    cmp = compare("dW1", grads["W1"], num, shape=(12, 8), status=status)
    assert not cmp.ok() and f"{cmp.unconverged} of 96 coordinate(s)" in cmp.row()
    with pytest.raises(AssertionError, match=r"did not converge there, and at \d+ of 96 coordinate\(s\) in all.*"
                                             r"tolerances=dict\(atol"):
        assert_close(cmp)
    num, status = numerical_grad(loss_of_W1, params["W1"], tolerances=dict(atol=1e-12), return_status=True)
    cmp = compare("dW1", grads["W1"], num, shape=(12, 8), status=status)
    assert cmp.ratio < 1e-6 and cmp.unconverged == 0


def test_the_gradient_tools_take_what_a_careful_caller_hands_them():
    # From a hostile review of the above: each of these was refused, or went through where it should not have.
    x = np.array([0.3, -0.2, 0.5])
    W = np.random.default_rng(1).normal(size=500)
    shuffle = np.random.default_rng(2)

    def reordered(z):  # the same loss, summed in another order each call (threads, a GPU): rounding, not noise
        t = np.concatenate([z**2, W * 1.2345678])
        return float(np.sum(t[shuffle.permutation(t.size)]))
    for _ in range(5):
        assert_close(compare("dz", 2 * x, numerical_grad(reordered, x), shape=x.shape))

    class Scalar:  # a 0-d tensor of a dtype numpy does not know, as torch's bfloat16 prints
        def __init__(self, v, dtype):
            self.v, self.dtype = v, type("D", (), {"__str__": lambda s: dtype})()

        def __float__(self):
            return self.v
    with pytest.raises(ValueError, match="f returned a bfloat16 loss"):
        numerical_grad(lambda z: Scalar(float(np.sum(z**2)), "torch.bfloat16"), x)
    assert numerical_grad(lambda z: Scalar(float(np.sum(z**2)), "torch.float64"), x) == pytest.approx(2 * x)
    for bad in (1e-13, {"abstol": 1e-13}):  # a number failed inside scipy; a misspelt key was ignored
        with pytest.raises(ValueError, match="tolerances must be None or a dict of atol and rtol"):
            numerical_grad(lambda z: float(np.sum(z**2)), x, tolerances=bad)


def test_check_model_takes_lists_mappings_and_tolerances():
    params, X, Y = _tiny_problem()
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=lambda *a, **k: list(model.loss_and_grads(*a, **k)))
    assert len(rows) == 10 and all(r.ok() for r in rows)
    from types import MappingProxyType

    def read_only(*a, **k):
        loss, grads, _ = model.loss_and_grads(*a, **k)
        return loss, MappingProxyType(grads), None  # intermediates None: the parameters alone
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=read_only)
    assert len(rows) == 5 and all(r.ok() for r in rows)
    with pytest.raises(ValueError, match="returned grads as NoneType, not a dict"):
        gradcheck.check_model(params, X, Y, loss_and_grads=lambda *a, **k: (1.0, None))
    with pytest.raises(ValueError, match=r"must return .* got tuple of 4"):
        gradcheck.check_model(params, X, Y, loss_and_grads=lambda *a, **k: (1.0, {}, {}, {}))
    calls = []
    gradcheck.check_model(params, X, Y, masks={"embcat": None, "h": None},
                          loss_and_grads=lambda *a, **k: calls.append(k) or model.loss_and_grads(*a, **k))
    assert calls == [{"return_intermediates": True}]  # masks of None are no masks: not passed on
    tiny = {**params, "C": params["C"] * 1e-5}  # dW1 tiny against the loss: it needs an absolute tolerance
    assert not {r.name: r for r in gradcheck.check_model(tiny, X, Y)}["dW1"].ok()
    assert all(r.ok() for r in gradcheck.check_model(tiny, X, Y, tolerances=dict(atol=1e-12)))


def test_check_model_refuses_what_cannot_be_this_model():
    # From a second hostile review: masks that were not a dict became an AttributeError; a parameter this model does
    # not have got a row against a forward pass that never reads it; and right gradients of another forward pass
    # (ReLU for tanh) failed at every row, dlogits first, blaming the softmax.
    params, X, Y = _tiny_problem()
    with pytest.raises(ValueError, match="masks must be a dict of dropout masks by name"):
        gradcheck.check_model(params, X, Y, masks=[None])
    with pytest.raises(ValueError, match=r"'s' is not a parameter of this model \(C, W1, b1, W2, b2, Wd\)"):
        gradcheck.check_model({**params, "s": np.ones(3)}, X, Y, loss_and_grads=lambda p, *a, **k: (1.0, {}))

    def relu_model(p, X, Y, return_intermediates=True):
        h = np.maximum(p["C"][X].reshape(len(Y), -1) @ p["W1"] + p["b1"], 0)
        z = h @ p["W2"] + p["b2"]
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(Y)), Y])), {}
    with pytest.raises(ValueError, match=r"gave a loss of .* where this model's is .*: not the same forward pass"):
        gradcheck.check_model(params, X, Y, loss_and_grads=relu_model)
    for loss in ("1.5", b"1.5", 1.5 + 2j, bytearray(b"1.5"), np.array("1.5")):  # float() reads all but 1.5+2j
        with pytest.raises(ValueError, match=r"returned a loss of \w+, not a real number"):
            gradcheck.check_model(params, X, Y, loss_and_grads=lambda *a, loss=loss, **k: (loss, {}))
    # From the third and fourth hostile reviews: smoothing as a numpy float32 rounded 1 - eps, and so the loss, in
    # the checker and in layers.py alike (refusing our model, or failing its rows at 1e-4 for a float16 eps); a
    # Fraction was a numpy casting error
    from fractions import Fraction
    for seed in range(4):
        p = gradcheck.random_params(7, 3, 4, 8, seed=seed)
        rng = np.random.default_rng(seed)
        Xs, Ys = rng.integers(0, 7, (6, 3)), rng.integers(0, 7, 6)
        for eps in (np.float32(0.3), np.float16(0.1), Fraction(1, 10)):
            assert all(r.ok() for r in gradcheck.check_model(p, Xs, Ys, smoothing=eps, max_coords=4)), (seed, eps)
    with pytest.raises(ValueError, match="this model's loss at these parameters is nan: use finite parameters"):
        gradcheck.check_model({**params, "W2": params["W2"] * np.nan}, X, Y)
    for pair in ((np.inf, 1.0), (-np.inf, 5.0), (1.0, np.inf)):  # an infinite value against another is no repeat
        values = iter(pair)
        with pytest.raises(ValueError, match="f gave two values at the same point"):
            numerical_grad(lambda z: next(values), np.zeros(1))
    with np.errstate(invalid="ignore"):  # inf - inf inside scipy
        infinite = numerical_grad(lambda z: np.inf, np.zeros(2))  # inf twice is the same value, not a random draw
    assert not np.isfinite(infinite).any()
    from types import MappingProxyType
    x = np.array([0.3, -0.2])
    num = numerical_grad(lambda z: float(np.sum(z**2)), x, tolerances=MappingProxyType({"atol": 1e-13}))
    assert num == pytest.approx(2 * x)


def test_what_an_engineers_gradients_get_wrong_is_named(monkeypatch):
    # From an engineer's review: misnamed keys were each "returned no gradient", with what was returned unsaid;
    # a transposed gradient's shape had no hint; a gradient of rounding noise gave a ratio of 6e15 and no word.
    params, X, Y = _tiny_problem()

    def misnamed(*a, **k):
        loss, grads, inter = model.loss_and_grads(*a, **k)
        grads["dC"] = grads.pop("C")
        return loss, grads, inter
    rows = {r.name: r for r in gradcheck.check_model(params, X, Y, loss_and_grads=misnamed)}
    assert "it returned 'dC', which are no tensors of this model" in rows["dC"].problem and rows["dW1"].ok()
    W = np.arange(6.0).reshape(2, 3)
    assert "(transposed?" in compare("dW", W.T, W.T.reshape(-1), shape=(2, 3)).problem
    assert "transposed" not in compare("dW", W.reshape(3, 2)[:2], W.reshape(-1)[:4], shape=(4,)).problem
    noise = compare("db2", np.array([2e-17, -1e-17]), np.array([0.3, -0.1]))
    assert not noise.ok() and noise.problem.startswith("the gradient is all but zero (at most 2.00e-17")
    assert compare("tiny", np.array([1e-9, -5e-10]), np.array([1e-9, -5e-10]) * (1 + 1e-9)).ok()  # tiny but right


def test_a_large_loss_is_judged_by_its_own_rounding_or_refused():
    # From an engineer's review: parameters scaled up saturate every tanh; the zeros were blamed ("misses it")
    # on rounding noise (here 1.4e-8, over a fixed 1e-8). Scaled by 3e4, correct output gradients failed.
    params, X, Y = _tiny_problem()
    rows = gradcheck.check_model({k: v * 9e3 for k, v in params.items()}, X, Y)  # a loss of 9,879
    zeros = [r for r in rows if r.scale == 0]
    assert zeros and all(r.problem == finitediff.PROVES_NOTHING for r in zeros)
    assert all(r.ok() for r in rows if r.scale > 0)
    # saturated but for rounding: gradients of 1e-13 against differences of 1e-10 are noise on both sides, and
    # were a bare FAIL (a review: random_params scaled by 40, a loss of 57; a --dropout of 0.9)
    rng = np.random.default_rng(0)
    X6, Y6 = rng.integers(0, 7, (6, 3)), rng.integers(0, 7, 6)
    rows = gradcheck.check_model({k: v * 60 for k, v in gradcheck.random_params(7, 3, 4, 8).items()}, X6, Y6)
    noise = [r for r in rows if r.problem == finitediff.PROVES_NOTHING and r.scale > 0]  # tiny, not zero
    assert noise and all(r.ok() or r.problem == finitediff.PROVES_NOTHING for r in rows)
    assert compare("dX", np.array([1e-13, 0.0]), np.array([1e-10, 0.0])).problem == finitediff.PROVES_NOTHING
    with pytest.raises(ValueError, match=r"loss at these parameters is 3\.29e\+04 nats a symbol, too large"):
        gradcheck.check_model({k: v * 3e4 for k, v in params.items()}, X, Y)


def test_the_comparisons_settings_are_checked():
    cmp = compare("dx", np.array([1.0]), np.array([1.0]))
    for bad in (-1, 0, float("nan"), float("inf"), "1e-6", True):
        with pytest.raises(ValueError, match="tol must be a finite number above 0"):
            cmp.ok(bad)
        with pytest.raises(ValueError, match="tol must be a finite number above 0"):
            assert_close(cmp, bad)
    for bad in (3, "ab", (2.0,), (-1,)):
        with pytest.raises(ValueError, match="shape must be a tuple of whole numbers"):
            compare("dx", np.ones(3), np.ones(3), shape=bad)
    assert compare("dx", np.ones(3), np.ones(3), shape=[3]).ok() and compare("dx", np.ones(3), np.ones(3), shape=(np.int64(3),)).ok()
    for bad in ({"atol": -1}, {"rtol": float("nan")}, {"atol": "0"}):
        with pytest.raises(ValueError, match="each a finite number of 0 or more"):
            numerical_grad(lambda z: float(np.sum(z**2)), np.ones(2), tolerances=bad)


def test_the_command_holds_the_branches_of_larger_sizes_to_the_checked_gradients(monkeypatch, capsys):
    # From a hostile review: embedding_backward's np.add.at branch (past 2**20 one-hot entries) and the softmax
    # backward's branch past 64 symbols never ran at the command's sizes, so the slips below passed it.
    real_emb, real_ce = layers.embedding_backward, layers.softmax_cross_entropy_backward

    def emb_slipped(demb, cache):  # dC[X] += demb in the large branch: a repeated symbol counted once
        X, (V, E) = cache
        if X.size * V <= layers.ONEHOT_MAX:
            return real_emb(demb, cache)
        dC = np.zeros((V, E))
        dC[X.reshape(-1)] += demb.reshape(-1, E)
        return dC

    def ce_slipped(dout, cache):  # 0.999 for 1 in the large branch's subtraction
        d = real_ce(dout, cache)
        if cache[0].shape[1] > onehot.IDENTITY_MAX_V:
            d[np.arange(len(cache[1])), cache[1]] += 0.001 / len(cache[1])
        return d
    for name, slipped, branch in (("embedding_backward", emb_slipped, "dC past 2**20"),
                                  ("softmax_cross_entropy_backward", ce_slipped, "a vocabulary past 64")):
        with monkeypatch.context() as m:
            m.setattr(layers, name, slipped)
            assert gradcheck.main([]) == 1
            out = capsys.readouterr().out
            assert "10 of 10 gradients within" in out  # the small sizes' own branches are right
            line = next(line for line in out.splitlines() if line.startswith(f"the branch for {branch}"))
            assert "10 of 10" not in line and " FAIL" in out, out
    assert gradcheck.main([]) == 0  # and put back as they were
    assert layers.ONEHOT_MAX == 1 << 20 and onehot.IDENTITY_MAX_V == 64


def test_a_backward_pass_that_rounds_through_float32_fails_the_command(monkeypatch, capsys):
    # From a hostile review: at the command's old 1e-6 a float32 cast inside tanh_backward passed ("ratio 3.5e-8 ok")
    real = layers.tanh_backward
    monkeypatch.setattr(layers, "tanh_backward", lambda dout, cache: real(dout, cache).astype(np.float32).astype(
        np.float64))
    assert gradcheck.main([]) == 1
    failed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.endswith(" FAIL")]
    assert "dhpreact" in failed and "dlogits" not in failed
    rows = {r.name: r for r in gradcheck.check_model(gradcheck.random_params(7, 3, 4, 8), *gradcheck.check_batch(
        6, 3, 7, np.random.default_rng(0)))}
    assert rows["dhpreact"].ok() and not rows["dhpreact"].ok(gradcheck.COMMAND_TOLERANCE)  # finitediff's own 1e-6 passes it


def test_rows_that_prove_nothing_say_unproven_not_fail(capsys):
    with pytest.raises(UsageError):
        gradcheck.main(["--dropout", "0.97"])
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows if r.endswith("]  unproven")] == ["dC", "dW1", "demb"]
    assert not any(r.endswith(" FAIL") for r in rows) and "7 of 10 gradients within 1e-09 of their scale; 3 unproven" in rows


def test_the_branches_checked_are_the_ones_the_sizes_do_not_take(monkeypatch, capsys):
    # From a second hostile review: at --vocab-size 65 the branch names use (V <= 64) went unchecked, and --fold
    # claimed a check of embedding_backward's np.add.at branch, which the folded layer never calls
    real_ce = layers.softmax_cross_entropy_backward

    def small_v_slipped(dout, cache):  # the identity branch's target a little off
        d = real_ce(dout, cache)
        if cache[0].shape[1] <= onehot.IDENTITY_MAX_V:
            d[np.arange(len(cache[1])), cache[1]] += 0.001 / len(cache[1])
        return d
    monkeypatch.setattr(layers, "softmax_cross_entropy_backward", small_v_slipped)
    assert gradcheck.main(["--vocab-size", "65", "--batch-size", "4", "--n-hidden", "6"]) == 1
    out = capsys.readouterr().out
    assert "10 of 10 gradients within 1e-09" in out  # V = 65 takes the other branch, which is right
    assert re.search(r"^the branch for a vocabulary of at most 64 symbols: [0-9] of 10 gradients the same, within "
                     r"1e-09:$", out, re.M), out
    assert gradcheck.main([]) == 1  # at V = 7 the slipped branch is the one checked, and the other is held to it
    out = capsys.readouterr().out
    assert "the branch for a vocabulary past 64 symbols: 0 of 10 gradients the same, within 1e-09, as the ones " \
           "above, which failed:" in out
    monkeypatch.undo()
    assert gradcheck.main(["--fold"]) == 0
    out = capsys.readouterr().out
    assert "the branch for a vocabulary past 64 symbols: 8 of 8" in out and "np.add.at" not in out
    assert [b[0] for b in gradcheck.other_branches(2, 1500, 1500)] == [
        "a vocabulary of at most 64 symbols", "dC within 2**20 one-hot entries (a one-hot product)"]


def test_a_failure_that_looks_like_a_common_slip_says_which():
    # From an engineer's review: a missing 1/B failed every row at 0.969 without naming the factor of 32, and a
    # transposed gradient of a square weight (H = V) got no hint, where a non-square one did
    from mlp_lm.finitediff import assert_close
    rng = np.random.default_rng(0)
    g = rng.standard_normal((27, 27))
    for analytic, said in ((g.T, "; its transpose matches: transposed? a weight's gradient has the weight's own layout"),
                           (32 * g, "; the analytic gradient is 32 times the numerical one, entry for entry: a factor "
                                    "left out or applied twice (a 1/B?)"),
                           (-g[0], "; the analytic gradient is -1 times the numerical one, entry for entry: a sign "
                                   "flipped?")):
        cmp = compare("dW2", analytic, g if analytic.ndim == 2 else g[0])
        with pytest.raises(AssertionError) as e:
            assert_close(cmp)
        assert str(e.value).endswith(said) and cmp.row().endswith(f"  [{said[2:]}]")
    for analytic in (rng.standard_normal((27, 27)), g + 1e-3 * rng.standard_normal((27, 27))):  # no such pattern
        assert compare("dW2", analytic, g).hint is None
    assert compare("dW2", g + 1e-9, g).hint is None  # passing: nothing to say
    # (a second hostile pass: "1 times" on a row that passed at the caller's tolerance, and a factor read off one
    # entry, whatever the slip)
    assert compare("dW2", g * (1 + 2e-6), g).hint is None and compare("dW2", g * (1 + 1e-5), g).hint is None
    assert compare("g", [1.5], [0.5]).hint is None and compare("g", [0, 0, 5.0, 0], [0, 0, 1.0, 0]).hint is None
    assert compare("dW2", 32 * g, g, coords=np.arange(729)).hint  # every coordinate, in order: the whole
    assert compare("dW2", 32 * g, g.reshape(-1)[:700], coords=np.arange(700)).hint is None  # some: no whole to judge
    # the whole model's check says it too: a backward pass that forgets the 1/B
    params, (X, Y) = gradcheck.random_params(7, 3, 4, 8), gradcheck.check_batch(6, 3, 7, np.random.default_rng(1))

    def no_mean(params, X, Y, return_intermediates=False):
        loss, grads, inter = model.loss_and_grads(params, X, Y, return_intermediates=True)
        scaled = ({k: 6 * g for k, g in grads.items()}, {k: 6 * g for k, g in inter.items()})
        return (loss, *scaled) if return_intermediates else (loss, scaled[0])
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=no_mean)
    assert all("is 6 times the numerical one" in r.row() for r in rows if r.name != "dC"), [r.row() for r in rows]


def test_someone_elses_gradient_code_that_cannot_take_the_call_is_told_how_it_is_called():
    # From an engineer's review: a loss_and_grads without the return_intermediates keyword raised Python's bare
    # TypeError from inside check_model
    params, (X, Y) = gradcheck.random_params(7, 3, 4, 8), gradcheck.check_batch(6, 3, 7, np.random.default_rng(1))
    with pytest.raises(ValueError, match=re.escape(
            "loss_and_grads is called as fn(params, X, Y, return_intermediates=True, smoothing=...), and yours cannot "
            "take that (got an unexpected keyword argument 'return_intermediates'): give it those keywords (it may "
            "return (loss, grads) alone, to check the parameters only)")):
        gradcheck.check_model(params, X, Y, smoothing=0.1, loss_and_grads=lambda params, X, Y: None)
    rows = gradcheck.check_model(params, X, Y, loss_and_grads=lambda params, X, Y, **kw: model.loss_and_grads(params, X, Y))
    assert [r.name for r in rows] == ["dC", "dW1", "db1", "dW2", "db2"] and all(r.ok() for r in rows)
    import functools  # a wrapper that takes the keyword is judged by its own signature, not the function it wraps

    def mine(params, X, Y):
        return model.loss_and_grads(params, X, Y)

    @functools.wraps(mine)
    def wrapped(params, X, Y, return_intermediates=False, **kw):
        return mine(params, X, Y)
    assert all(r.ok() for r in gradcheck.check_model(params, X, Y, loss_and_grads=wrapped))


def test_what_an_engineers_trial_passed_in_is_taken_or_named():
    # From an engineer's trial of checking their own code: lists of indices, which the docs say are read
    # through np.asarray, failed inside check_model (AttributeError: 'list' object has no attribute 'shape');
    # a list of parameters and a dict of gradients failed with Python's own words
    params, X, Y = _tiny_problem()
    as_arrays = modelcheck.check_model(params, X, Y, max_coords=4)
    as_lists = modelcheck.check_model(params, X.tolist(), Y.tolist(), max_coords=4)
    assert [r.ratio for r in as_lists] == [r.ratio for r in as_arrays] and all(r.ok() for r in as_lists)
    with pytest.raises(ValueError, match=r"^params must be a dict of arrays by name \(C, W1, b1, W2, b2\), got list$"):
        modelcheck.check_model(list(params.values()), X, Y)
    with pytest.raises(ValueError, match=r"^params\['W1'\] must be an array of real numbers, got dict: one tensor"):
        modelcheck.check_model({**params, "W1": {"W1": params["W1"]}}, X, Y)
    with pytest.raises(ValueError, match=r"X must be \(N, 3\) and Y \(N,\) for the same N"):
        modelcheck.check_model(params, X.tolist(), Y.tolist()[:-1])
    with pytest.raises(ValueError, match=r"^the analytic gradient must be an array of real numbers, got dict: one "
                                         r"tensor at a time$"):
        compare("dW1", {"W1": params["W1"]}, params["W1"])
    with pytest.raises(ValueError, match=r"^x must be an array of real numbers, got list$"):
        numerical_grad(lambda v: 0.0, [[1.0, 2.0], [3.0]])  # ragged


def test_a_loss_far_below_1_is_told_of_zero_noise():
    # From the same trial: with the loss scaled by 1e-10, a doubled gradient was "proves nothing" with no word
    # of compare's zero_noise, which no doc named
    g = np.array([1e-10, 2e-10, -3e-10])
    with pytest.raises(AssertionError, match=r"proves nothing: use other inputs \(its largest entry, 6\.00e-10, is "
                                             r"within zero_noise, the rounding noise allowed for; if it is no noise, "
                                             r"pass a smaller zero_noise: about 1e-08 times a loss far below 1, see "
                                             r"docs/gradcheck.md\)$"):
        assert_close(compare("dW", 2 * g, g))
    with pytest.raises(AssertionError, match=r"2 times the numerical one"):
        assert_close(compare("dW", 2 * g, g, zero_noise=1e-18))
    assert_close(compare("dW", g, g, zero_noise=1e-18))
    with pytest.raises(AssertionError, match=r"proves nothing: use other inputs$"):  # all zeros: no such advice
        assert_close(compare("dW", np.zeros(3), np.zeros(3)))


def _softmax_regression(X, Y, slip=None):
    """A model that is not ours, with its backward written out: the loss and gradients of softmax(X W + b)."""
    def loss_and_grads(p):
        z = X @ p["W"] + p["b"]
        e = np.exp(z - z.max(1, keepdims=True))
        probs = e / e.sum(1, keepdims=True)
        dz = probs.copy()
        dz[np.arange(len(Y)), Y] -= 1
        dz /= len(Y)
        grads = {"W": X.T @ dz, "b": dz.sum(0)}
        if slip == "transposed":
            grads["W"] = grads["W"].T.copy()
        elif slip == "one path":  # W also scales the loss through a second use, which this backward forgets
            pass
        return -np.log(probs[np.arange(len(Y)), Y]).mean() + (0.5 * float(np.sum(p["W"] ** 2)) if slip == "one path"
                                                              else 0.0), grads
    return loss_and_grads


def test_check_gradients_holds_every_tensor_of_a_model_not_ours():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((6, 4)), np.array([0, 3, 1, 2, 3, 0])
    p = {"W": rng.standard_normal((4, 4)), "b": rng.standard_normal(4)}
    fn = _softmax_regression(X, Y)
    rows = finitediff.check_gradients(lambda q: fn(q)[0], p, fn(p)[1])
    assert [r.name for r in rows] == ["dW", "db"] and all(r.ratio < 1e-9 for r in rows)
    for slip, wrong, said in (("transposed", "dW", "its transpose matches"), ("one path", "dW", None)):
        bad = _softmax_regression(X, Y, slip)
        rows = finitediff.check_gradients(lambda q: bad(q)[0], p, bad(p)[1])
        assert [r.name for r in rows if not r.ok()] == [wrong], slip
        with pytest.raises(AssertionError, match=said or "is off"):
            assert_close(rows[0])
    # sampled entries, always with the largest; a missing gradient and a stray name are said
    rows = finitediff.check_gradients(lambda q: fn(q)[0], p, fn(p)[1], max_coords=3, seed=1)
    assert [r.compared for r in rows] == [3, 3] and all(r.ok() for r in rows)
    assert rows[0].scale == np.abs(fn(p)[1]["W"]).max()
    rows = finitediff.check_gradients(lambda q: fn(q)[0], p, {"W": fn(p)[1]["W"]})
    assert rows[1].problem == "no gradient was given for it" and not rows[1].ok()
    with pytest.raises(ValueError, match=r"^grads holds 'bias', which params does not \('W', 'b'\)$"):
        finitediff.check_gradients(lambda q: fn(q)[0], p, {**fn(p)[1], "bias": p["b"]})
    with pytest.raises(ValueError, match="max_coords must be None or a whole number"):
        finitediff.check_gradients(lambda q: fn(q)[0], p, fn(p)[1], max_coords=0)
    with pytest.raises(ValueError, match="params and grads must be dicts of arrays by name, got list and dict"):
        finitediff.check_gradients(lambda q: fn(q)[0], list(p.values()), fn(p)[1])
    with pytest.raises(ValueError, match="f returned a float32 loss"):  # the loss is checked like numerical_grad's f
        finitediff.check_gradients(lambda q: np.float32(fn(q)[0]), p, fn(p)[1])

    def writes_into_b(q):
        z = q["b"]
        z += X[:, 0].sum()  # an alias written to: b itself moves on every call
        return fn(q)[0]
    with pytest.raises(ValueError, match=r"^loss changed params\['b'\] in place"):
        finitediff.check_gradients(writes_into_b, p, fn(p)[1])


def test_check_gradients_after_a_hostile_pass():
    # From a hostile tester of check_gradients: each of these passed, failed for the wrong reason, or ended in
    # Python's own words
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((6, 4)), np.array([0, 3, 1, 2, 3, 0])
    p = {"W": rng.standard_normal((4, 4)), "b": rng.standard_normal(4)}
    fn = _softmax_regression(X, Y)
    loss, grads = fn(p)
    for params, said in (({}, r"params must name one array or more, by strings, got the names \[\]"),  # passed
                         ({0: p["W"]}, r"by strings, got the names \[0\]")):  # after the differences: "d" + 0
        with pytest.raises(ValueError, match=said):
            finitediff.check_gradients(lambda q: 1.0, params, {})
    with pytest.raises(ValueError, match=r"^loss is nan at params"):
        finitediff.check_gradients(lambda q: float("nan"), p, grads)
    with pytest.raises(ValueError, match=r"^seed must be a whole number of 0 or more, or None, got -1$"):
        finitediff.check_gradients(lambda q: fn(q)[0], p, grads, seed=-1)
    with pytest.raises(ValueError, match=r"^zero_noise must be a finite number of 0 or more"):
        finitediff.check_gradients(lambda q: fn(q)[0], p, grads, zero_noise=-1.0)
    with pytest.raises(ValueError, match=r"the analytic gradient is None, not an array"):  # it was nan, "nan there"
        compare("dW", None, np.ones(3))
    # a loss that adds a name to the dict it is given: its own business (a KeyError in the checker before)
    assert all(r.ok() for r in finitediff.check_gradients(lambda q: q.setdefault("new", 1) and fn(q)[0], p, grads))

    # a loss of the model's own arrays, not the ones it is given: numerical zeros, blamed on scipy before
    rows = finitediff.check_gradients(lambda q: fn(p)[0], p, grads)
    with pytest.raises(AssertionError) as e:
        assert_close(rows[0])
    assert "does it read the array it is given" in str(e.value) and "scipy" not in str(e.value), str(e.value)

    # a loss of size 1e8 whose gradient (about 1) is judged noise by the default zero_noise; a smaller one checks it
    w = rng.standard_normal(5)
    big = finitediff.check_gradients(lambda q: 1e8 + float(np.sum(np.sin(q["w"]))), {"w": w}, {"w": np.cos(w)})
    assert big[0].problem == finitediff.PROVES_NOTHING
    # atol 1e-5, above the loss's rounding divided by scipy's steps (1.5e-8 / 0.1 times its weights): at 1e-6 whether
    # scipy converged was a coin toss (27 of 80 seeds and gradients failed, 24 with other BLAS kernels, whose
    # rounding of scipy's own small products moved it; at 1e-5 none)
    for g, ok in ((np.cos(w), True), (2 * np.cos(w), False)):
        rows = finitediff.check_gradients(lambda q: 1e8 + float(np.sum(np.sin(q["w"]))), {"w": w}, {"w": g},
                                          zero_noise=1e-6, tolerances=dict(atol=1e-5))
        assert rows[0].ok(tol=1e-4) == ok and rows[0].problem is None

    # ReLU: the first steps straddle a kink near the point, and a correct gradient failed, with no word of kinks and
    # no way to pass numerical_grad's initial_step through
    rng = np.random.default_rng(4)
    Xr, yr = rng.standard_normal((8, 3)), rng.standard_normal(8)
    q = {"W": rng.standard_normal((3, 5)), "b": 0.1 * rng.standard_normal(5), "w2": rng.standard_normal(5)}
    q["b"][0] -= (Xr @ q["W"] + q["b"])[0, 0] - 1e-4  # one pre-activation 1e-4 from its kink

    def relu_loss(q):
        r = np.maximum(Xr @ q["W"] + q["b"], 0) @ q["w2"] - yr
        return float(0.5 * np.mean(r * r))

    z = Xr @ q["W"] + q["b"]
    dz = np.outer((np.maximum(z, 0) @ q["w2"] - yr) / 8, q["w2"]) * (z > 0)
    relu_grads = {"W": Xr.T @ dz, "b": dz.sum(0), "w2": np.maximum(z, 0).T @ ((np.maximum(z, 0) @ q["w2"] - yr) / 8)}
    rows = finitediff.check_gradients(relu_loss, q, relu_grads)
    with pytest.raises(AssertionError, match=r"a kink near the point \(ReLU, abs, max\) that the steps straddle, "
                                             r"which a smaller initial_step avoids"):
        assert_close(rows[0])
    assert all(r.ok() for r in finitediff.check_gradients(relu_loss, q, relu_grads, initial_step=1e-3))


def test_a_factor_near_1_is_not_called_a_1_over_B():
    x = np.array([0.3, -1.2, 0.7, 2.0])
    assert compare("dx", 1.01 * x, x).hint == "the analytic gradient is 1.01 times the numerical one, entry for " \
                                              "entry: a constant factor off"
    assert "(a 1/B?)" in compare("dx", x / 8, x).hint and "a sign flipped?" in compare("dx", -x, x).hint
