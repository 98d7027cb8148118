"""Optimisers, schedules and weight averaging against their equations."""
import math
import re

import numpy as np
import pytest

from mlp_lm import model, optim


def test_adamw_first_two_steps_by_hand():
    # One decayed weight and one bias, two steps, every number worked out here.
    p = {"W1": np.array([1.0]), "b1": np.array([2.0])}
    opt = optim.AdamW(weight_decay=0.1, beta1=0.9, beta2=0.99, eps=1e-300)  # as good as 0 in these numbers
    opt.step(p, {"W1": np.array([0.5]), "b1": np.array([-0.5])}, lr=0.01)
    # t=1: m = 0.05, v = 0.0025; m_hat = 0.5, v_hat = 0.25; the update is lr * 0.5 / 0.5 = lr * sign(g).
    # W1 first decays: 1 * (1 - 0.01 * 0.1) = 0.999, then 0.999 - 0.01 = 0.989.
    assert p["W1"][0] == pytest.approx(0.989, abs=1e-15)
    assert p["b1"][0] == pytest.approx(2.01, abs=1e-15)  # no decay on biases
    opt.step(p, {"W1": np.array([-1.0]), "b1": np.array([0.0])}, lr=0.01)
    # t=2: m = 0.9*0.05 - 0.1 = -0.055, v = 0.99*0.0025 + 0.01 = 0.012475
    m_hat, v_hat = -0.055 / (1 - 0.81), 0.012475 / (1 - 0.9801)
    assert p["W1"][0] == pytest.approx(0.989 * (1 - 0.001) - 0.01 * m_hat / math.sqrt(v_hat), abs=1e-14)
    m_hat_b, v_hat_b = 0.9 * -0.05 / 0.19, 0.99 * 0.0025 / 0.0199
    assert p["b1"][0] == pytest.approx(2.01 - 0.01 * m_hat_b / math.sqrt(v_hat_b), abs=1e-14)


def test_adamw_matches_its_equations_on_a_quadratic():
    # Minimise 0.5 * |A x - y|^2 with AdamW, and with the docstring's equations written out.
    rng = np.random.default_rng(0)
    A, y = rng.standard_normal((6, 4)), rng.standard_normal(6)
    p = {"W1": rng.standard_normal(4)}
    x, m, v = p["W1"].copy(), np.zeros(4), np.zeros(4)
    opt = optim.AdamW(weight_decay=0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    for t in range(1, 51):
        g = A.T @ (A @ p["W1"] - y)
        opt.step(p, {"W1": g}, lr=0.05)
        gx = A.T @ (A @ x - y)
        x = x - 0.05 * 0.01 * x
        m = 0.8 * m + 0.2 * gx
        v = 0.95 * v + 0.05 * gx**2
        x = x - 0.05 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-6)
    np.testing.assert_allclose(p["W1"], x, rtol=1e-12)
    assert np.linalg.norm(A @ x - y) < np.linalg.norm(A @ rng.standard_normal(4) - y)


def test_adamw_trains_the_model():
    rng = np.random.default_rng(1)
    X, Y = rng.integers(0, 27, (64, 3)), rng.integers(0, 27, 64)
    params = model.init_params(27, 3, 10, 50, seed=1, dtype=np.float64)
    opt = optim.AdamW(weight_decay=0.01)
    first = model.loss_and_grads(params, X, Y)[0]
    for _ in range(200):
        _, grads = model.loss_and_grads(params, X, Y)
        opt.step(params, grads, 0.01)
    assert model.loss_and_grads(params, X, Y)[0] < first / 3


def adam_moments(gs, b1, b2):
    """AdamW's m and v after the gradients gs (one per step), by its equations 2 and 3."""
    m = v = 0.0
    for g in gs:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    return m, v


@pytest.mark.parametrize("b1,b2", [(0.9, 0.999), (0.8, 0.95), (0.0, 0.5), (0.5, 0.3)])
def test_the_moment_bound_holds_for_any_gradients_and_is_reached(b1, b2):
    rng = np.random.default_rng(2)
    for t in (1, 2, 7, 300):
        K = optim.moment_bound(b1, b2, t)
        for gs in (rng.standard_normal(t), rng.standard_cauchy(t), np.abs(rng.standard_normal(t)) * 10.0**rng.integers(-5, 5, t)):
            m, v = adam_moments(gs, b1, b2)
            assert m * m <= K * v * (1 + 1e-12)
        # Cauchy-Schwarz is an equality when g_i is proportional to b1^(t-i) / b2^(t-i): the bound is exact
        m, v = adam_moments((b1 / b2) ** np.arange(t - 1, -1, -1.0), b1, b2)
        assert m * m == pytest.approx(K * v, rel=1e-9)
    assert optim.moment_bound(0.9, 0.8, 10) == math.inf  # b1^2 >= b2: no useful bound
    assert optim.moment_bound(0.0, 0.0, 10) == 1.0  # m = g and v = g^2: m^2 = v exactly


def test_sgd_without_decay_is_the_plain_update():
    p = {"W1": np.array([1.0, 2.0]), "b1": np.array([3.0])}
    optim.SGD().step(p, {"W1": np.array([1.0, -1.0]), "b1": np.array([2.0])}, 0.5)
    assert p["W1"].tolist() == [0.5, 2.5] and p["b1"].tolist() == [2.0]


def test_weight_decay_by_name_refuses_names_it_does_not_know_and_takes_the_names_given():
    # From an engineer's review: their AdamW's tensors were called "weight" and "bias", so ours decayed
    # neither, with no word of it (1.3e-3 apart after one step).
    theirs = {"weight": np.array([1.0, -2.0]), "bias": np.array([0.5])}
    grads = {"weight": np.array([0.1, 0.2]), "bias": np.array([0.3])}
    for opt in (optim.AdamW(weight_decay=0.1), optim.SGD(weight_decay=0.1)):
        before = {k: v.copy() for k, v in theirs.items()}
        with pytest.raises(ValueError, match=r"'weight', 'bias' are none of them: pass decayed="):
            opt.step(theirs, grads, 0.1)
        assert all(np.array_equal(theirs[k], before[k]) for k in theirs)  # refused before anything moved
        assert getattr(opt, "t", 0) == 0
    for make in (optim.AdamW, optim.SGD):  # decayed names the tensors: the same step as ours on C, W1 and b1
        named, ours = {k: v.copy() for k, v in theirs.items()}, {"W1": theirs["weight"].copy(), "b1": theirs["bias"].copy()}
        make(weight_decay=0.1, decayed=["weight"]).step(named, grads, 0.1)
        make(weight_decay=0.1).step(ours, {"W1": grads["weight"], "b1": grads["bias"]}, 0.1)
        assert np.array_equal(named["weight"], ours["W1"]) and np.array_equal(named["bias"], ours["b1"])
    optim.AdamW().step({k: v.copy() for k, v in theirs.items()}, grads, 0.1)  # no decay: names do not matter
    for make in (optim.AdamW, optim.SGD):  # a misspelt name decayed nothing, and said nothing
        named = {k: v.copy() for k, v in theirs.items()}
        with pytest.raises(ValueError, match=r"decayed holds 'weigth', which is not among the parameters \('weight', 'bias'\)"):
            make(weight_decay=0.1, decayed={"weigth"}).step(named, grads, 0.1)
        assert np.array_equal(named["weight"], theirs["weight"])
    for bad in ("W1", 5, [1, 2]):
        with pytest.raises(ValueError, match="decayed must be a collection of tensor names"):
            optim.AdamW(weight_decay=0.1, decayed=bad)


def test_schedules():
    assert [optim.learning_rate("step", 0.5, s, 10) for s in range(10)] == [0.5] * 5 + [0.05] * 5
    inv = [optim.learning_rate("inverse", 0.2, t, 100, decay_rate=0.5) for t in range(4)]
    assert inv == pytest.approx([0.2, 0.2 / 1.5, 0.2 / 2, 0.2 / 2.5])
    cos = [optim.learning_rate("cosine", 1.0, s, 110, warmup=10, min_lr=0.1) for s in range(110)]
    assert cos[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])  # linear warm-up to the peak
    assert cos[10] == 1.0 and cos[-1] == pytest.approx(0.1)  # then from the peak down to the floor
    assert cos[60] == pytest.approx(0.55, abs=0.01)  # halfway, halfway down
    assert all(a >= b for a, b in zip(cos[10:], cos[11:]))
    # One step left after the warm-up: it is the last, so it is at the floor (it stayed at the peak)
    assert [optim.learning_rate("cosine", 1.0, s, 4, warmup=3, min_lr=0.1) for s in range(4)] == \
        pytest.approx([1 / 3, 2 / 3, 1.0, 0.1])
    with pytest.raises(ValueError, match="schedule"):
        optim.learning_rate("linear", 1.0, 0, 10)


def test_ema():
    p = {"W1": np.array([0.0])}
    ema = optim.EMA(p, 0.9)
    for value in (1.0, 1.0, 1.0):
        p["W1"][:] = value
        ema.update(p)
    assert ema.avg["W1"][0] == pytest.approx(1 - 0.9**3)
    assert p["W1"][0] == 1.0  # the average is a copy, not the parameters


def test_the_building_blocks_refuse_hyperparameters_outside_their_range():
    from mlp_lm import model
    for make in (lambda: optim.SGD(weight_decay=-1), lambda: optim.SGD(weight_decay=float("nan")),
                 lambda: optim.AdamW(beta1=1.0), lambda: optim.AdamW(beta2=-0.1), lambda: optim.AdamW(eps=float("inf")),
                 lambda: optim.EMA({}, 1.5), lambda: optim.EMA({}, 1.0)):  # 1.0: the average never moves
        with pytest.raises(ValueError, match="outside its range"):
            make()
    with pytest.raises(ValueError, match="weight_decay"):
        model.l2_penalty({"W1": np.ones((2, 2))}, -0.1)  # a negative penalty


def test_eps_zero_is_refused_and_a_one_step_cosine_run_trains():
    with pytest.raises(ValueError, match=r"eps is 0.0, outside its range \(0, inf\)"):
        optim.AdamW(eps=0.0)  # 0/0 on a coordinate whose gradients were all 0 so far
    assert optim.learning_rate("cosine", 0.3, 0, 1) == 0.3  # the whole run: at the peak, not the floor (0)
    assert optim.learning_rate("cosine", 0.3, 1, 2, warmup=1) == 0.0  # one step after warm-up: the last, the floor


def plain_adamw_step(p, g, m, v, t, lr, decay, b1=0.9, b2=0.999, eps=1e-8):
    """AdamW's update written plainly, one whole-tensor expression an equation (its code before the
    blocked, in-place update): what AdamW.step must give to the last bit."""
    if decay:
        p *= 1 - lr * decay
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    p -= (lr / (1 - b1**t)) * m / (np.sqrt(v / (1 - b2**t)) + eps)


@pytest.mark.parametrize("block", [optim.UPDATE_BLOCK, 7, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_blocked_update_is_the_plain_arithmetic_to_the_bit(monkeypatch, block, dtype):
    # The update goes a block of rows at a time through two kept scratch arrays; it must be the
    # same numbers as the plain expressions, over tensors of one block, of many, with rows longer
    # than a block, and with a small tensor first (the scratch arrays then grow).
    monkeypatch.setattr(optim, "UPDATE_BLOCK", block)
    rng = np.random.default_rng(5)
    # b1: a block and a quarter, in blocks of single entries (40,000 of them at block 1 were seconds of calls)
    shapes = {"b2": (5,), "W1": (70, 600), "C": (27, 10), "b1": (block + block // 4 + 3,), "W2": (3, 4, 5)}
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    mine, ref = {k: a.copy() for k, a in params.items()}, {k: a.copy() for k, a in params.items()}
    ms, vs = {k: np.zeros_like(a) for k, a in params.items()}, {k: np.zeros_like(a) for k, a in params.items()}
    opt = optim.AdamW(weight_decay=0.1)
    for t in range(1, 4):
        grads = {k: (rng.standard_normal(s) * 10.0 ** rng.integers(-4, 2)).astype(dtype) for k, s in shapes.items()}
        opt.step(mine, grads, lr=3e-3 * t)
        for k in shapes:
            plain_adamw_step(ref[k], grads[k], ms[k], vs[k], t, 3e-3 * t, 0.1 if k in ("W1", "C", "W2") else 0)
        for k in shapes:
            assert mine[k].dtype == dtype
            assert np.array_equal(mine[k], ref[k]), k
            assert np.array_equal(opt.m[k], ms[k]) and np.array_equal(opt.v[k], vs[k]), k
    assert not np.array_equal(mine["W1"], params["W1"])  # it moved


def test_optimizers_refuse_a_gradient_not_shaped_like_its_tensor():
    # Made a block of rows at a time, AdamW's update would slice a (H,) gradient for a (T*E, H) W1 as
    # if it were rows of W1; the whole-tensor arithmetic broadcast it.
    # SGD's p -= lr * g broadcast it too, silently. Both refuse it, before anything moves.
    p = {"W1": np.ones((4, 3)), "b1": np.ones(3)}
    adamw = optim.AdamW(weight_decay=0.1)
    for opt in (adamw, optim.SGD(weight_decay=0.1)):
        for grads, said in (({"W1": np.ones(3), "b1": np.ones(3)}, "(4, 3), got (3,)"),
                            ({"b1": np.ones(3)}, "(4, 3), got none"),
                            ({"W1": np.ones((4, 3)).tolist(), "b1": np.ones(3)}, "(4, 3), got list")):
            with pytest.raises(ValueError, match=re.escape(f"the gradient of 'W1' must be an array of its shape {said}")):
                opt.step(p, grads, 0.1)
    assert adamw.t == 0 and not adamw.m
    assert np.array_equal(p["W1"], np.ones((4, 3))) and np.array_equal(p["b1"], np.ones(3))


def test_optimizers_refuse_a_bad_learning_rate_a_list_and_a_misspelt_name_without_decay():
    # From an engineer's review: lr -1 and nan were taken; SGD left a list parameter as it was and said
    # nothing (p -= ... rebinds the name); a misspelt decayed= name passed while the decay was 0.
    grads = {"weight": np.ones(2)}
    for make in (optim.AdamW, optim.SGD):
        for lr in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=re.escape(f"the learning rate is {lr!r}, outside its range [0, inf)")):
                make().step({"weight": np.ones(2)}, grads, lr)
        for lr in (True, np.array([0.1, 0.2]), "0.1"):  # True stepped at a rate of 1
            with pytest.raises(ValueError, match="the learning rate must be a number, got"):
                make().step({"weight": np.ones(2)}, grads, lr)
        with pytest.raises(ValueError, match=re.escape("the learning rate is inf, outside its range [0, inf)")):
            make().step({"weight": np.ones(2)}, grads, 10**400)  # an OverflowError once AdamW's moments had moved
        p = {"weight": np.ones(2)}
        make().step(p, grads, np.float32(0.5))  # numpy's numbers are numbers
        assert p["weight"][0] < 1
        from fractions import Fraction
        q = {"weight": np.ones(2)}
        make().step(q, grads, Fraction(1, 2))  # SGD failed in numpy (UFuncTypeError), AdamW took it
        make().step(p := {"weight": np.ones(2)}, grads, 0.5)
        assert np.array_equal(q["weight"], p["weight"])
        with pytest.raises(ValueError, match="the parameter 'weight' must be a writable floating-point numpy array, "
                                             "changed in place, got list"):
            make().step({"weight": [1.0, 2.0]}, grads, 0.5)
        with pytest.raises(ValueError, match="decayed holds 'Weight', which is not among the parameters"):
            make(0.0, decayed=("Weight",)).step({"weight": np.ones(2)}, grads, 0.5)
        p = {"weight": np.ones(2)}
        make().step(p, grads, 0.0)  # a learning rate of 0 (a warm-up's first step) moves nothing
        assert np.array_equal(p["weight"], np.ones(2))


def test_adamw_refuses_to_step_other_tensors_than_its_first():
    # One step count serves all of AdamW's tensors (torch counts each tensor's own): a tensor first
    # stepped at step 2 would start with bias corrections meant for step 2, and two models stepped by
    # one optimiser would each count the other's steps.
    opt = optim.AdamW()
    opt.step({"a": np.ones(2), "b": np.ones(3)}, {"a": np.ones(2), "b": np.ones(3)}, 0.1)
    for params in ({"a": np.ones(2)}, {"a": np.ones(2), "b": np.ones(3), "c": np.ones(1)}):
        with pytest.raises(ValueError, match="its step count is the same for all its tensors"):
            opt.step(params, {k: np.ones_like(v) for k, v in params.items()}, 0.1)
    assert opt.t == 1
    opt.step({"a": np.ones(2), "b": np.ones(3)}, {"a": np.ones(2), "b": np.ones(3)}, 0.1)  # the same ones: on it goes
    assert opt.t == 2


def test_optimizers_refuse_before_moving_what_would_fail_or_round_part_way():
    # From a hostile review: an int64 or read-only tensor after W1 failed in numpy once W1 had moved; a
    # float64 gradient for a float32 tensor was rounded in AdamW's scratch arrays, not as the plain
    # expressions round it (2.4e-7 apart); an empty first step counted as AdamW's step 1.
    frozen = np.ones(3)
    frozen.flags.writeable = False
    cases = [({"b1": np.ones(3, dtype=np.int64)}, "must be a writable floating-point numpy array, changed in place, "
                                                  "got a int64 array"),
             ({"b1": frozen}, "got a read-only array"),
             ({"b1": np.ones(3)}, "the gradient of 'b1' must be float64, as the parameter is, got float32")]
    for make in (optim.AdamW, optim.SGD):
        for extra, said in cases:
            params = {"W1": np.ones((2, 3)), **extra}
            grads = {"W1": np.ones((2, 3)), "b1": np.ones(3, dtype=np.float32 if "float32" in said else np.float64)}
            opt = make(0.1)
            with pytest.raises(ValueError, match=re.escape(said)):
                opt.step(params, grads, 0.1)
            assert np.array_equal(params["W1"], np.ones((2, 3))) and getattr(opt, "t", 0) == 0
        with pytest.raises(ValueError, match="there are no parameters to step"):
            make().step({}, {}, 0.1)


class NoMemory(np.ndarray):
    """A gradient whose arithmetic runs out of memory, as a new array would under a memory limit."""

    def __array_ufunc__(self, *args, **kwargs):
        raise MemoryError


def test_memory_running_out_part_way_through_an_update_moves_nothing(monkeypatch):
    # A training that runs out of memory saves the state it has (loop.train): some tensors stepped and others
    # not would be a state no number of steps gives. So each update makes its arrays before anything moves.
    def fresh():
        return {"W1": np.ones((4, 3)), "b1": np.ones(3)}

    params, grads = fresh(), {"W1": np.ones((4, 3)), "b1": np.ones(3).view(NoMemory)}  # W1's would move first
    with pytest.raises(MemoryError):
        optim.SGD(weight_decay=0.1).step(params, grads, 0.5)
    assert all(np.array_equal(p, q) for p, q in zip(params.values(), fresh().values()))

    made, real_empty_like = [], np.empty_like  # AdamW's scratch: W1's two arrays made, b1's first refused

    def empty_like(a, *args, **kwargs):
        made.append(a.shape)
        if len(made) == 3:
            raise MemoryError
        return real_empty_like(a, *args, **kwargs)

    for resumed in (False, True):
        made.clear()
        opt = optim.AdamW(weight_decay=0.1)
        if resumed:  # moments loaded, scratch arrays not yet made
            other = optim.AdamW()
            other.step(fresh(), {k: np.full_like(p, 0.5) for k, p in fresh().items()}, 0.1)
            opt.load_state(other.state())
        before = {k: np.array(a) for k, a in opt.state().items()}
        params = fresh()
        monkeypatch.setattr(np, "empty_like", empty_like)
        with pytest.raises(MemoryError):
            opt.step(params, {k: np.full_like(p, 0.5) for k, p in params.items()}, 0.1)
        monkeypatch.undo()
        assert all(np.array_equal(p, q) for p, q in zip(params.values(), fresh().values()))
        state = opt.state()
        assert state.keys() == before.keys() and all(np.array_equal(state[k], before[k]) for k in before)


def test_an_average_and_a_later_adamw_step_make_no_arrays():
    # so that memory cannot run out once the parameters have begun to move (the test above)
    import tracemalloc
    params = {"W1": np.ones((1000, 500)), "b1": np.ones(500)}  # W1 4 MB: a temporary of it would show
    grads = {k: np.full_like(p, 0.5) for k, p in params.items()}
    ema, opt = optim.EMA(params, 0.9), optim.AdamW(weight_decay=0.1)
    opt.step(params, grads, 0.1)  # the first step makes the moments and the scratch arrays
    tracemalloc.start()
    try:
        ema.update(params)
        opt.step(params, grads, 0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak


def test_the_updates_are_the_plain_arithmetic_to_the_bit_whatever_the_scalar_types():
    # A reviewer's, of the updates rewritten to make their arrays first: a 0-d tensor (AdamW indexed every tensor
    # by rows) and a numpy float64 decay for a float32 average (rounded twice, in its scratch and then in the sum)
    rng = np.random.default_rng(0)
    p = {"W1": rng.standard_normal((5, 4)).astype(np.float32), "b1": np.array(0.5, dtype=np.float32)}
    g = {k: rng.standard_normal(np.shape(a)).astype(np.float32) for k, a in p.items()}
    opt = optim.AdamW(weight_decay=0.1)
    q = {k: a.copy() for k, a in p.items()}
    opt.step(q, g, 0.01)
    m = {k: np.float32(0.1) * a for k, a in g.items()}  # 2. from m_0 = 0: (1 - b1) g, rounded as the update rounds it
    assert q["b1"].shape == () and q["b1"] != p["b1"] and np.array_equal(opt.m["b1"], m["b1"])
    sgd = {k: a.copy() for k, a in p.items()}
    optim.SGD(weight_decay=0.1).step(sgd, g, np.float64(0.5))
    # (a numpy float64 rate makes the step float64, rounded to float32 as it lands, as p -= lr * g always did)
    stepped = {k: g[k] + 0.1 * p[k] if k == "W1" else g[k] for k in p}  # (the biases are not decayed)
    assert all(np.array_equal(sgd[k], (p[k] - np.float64(0.5) * stepped[k]).astype(np.float32)) for k in p)
    for decay in (0.9, np.float64(0.9), np.float32(0.9)):
        ema = optim.EMA(p, decay)
        ema.update(g)
        d = float(decay)  # (a float32 0.9 is 0.89999998)
        assert all(np.array_equal(ema.avg[k], p[k] * d + (1 - d) * g[k]) for k in p), decay


def test_parameters_in_the_other_byte_order_step_as_the_native_ones_do():
    # Parameters read from a file written on a big-endian machine (>f4) get their gradients in this
    # machine's order: the optimisers refused them ("must be >f4, as the parameter is, got float32").
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 7, (5, 3)), np.arange(5)
    for make in (lambda: optim.SGD(0.01), lambda: optim.AdamW(weight_decay=0.1)):
        native = model.init_params(7, 3, 4, 8)
        swapped = {k: p.astype(p.dtype.newbyteorder("S")) for k, p in native.items()}
        for params, opt in ((native, make()), (swapped, make())):
            for _ in range(3):
                opt.step(params, model.loss_and_grads(params, X, Y)[1], 0.05)
        assert all(swapped[k].dtype.byteorder != native[k].dtype.byteorder for k in native)
        assert all(np.array_equal(native[k], swapped[k]) for k in native)
        assert not np.array_equal(native["W1"], model.init_params(7, 3, 4, 8)["W1"])  # they did move


def test_an_adamw_or_an_average_given_another_models_tensors_refuses_before_anything_moves():
    # From a library user's review: an AdamW reused on a model of another vocabulary under the same names
    # decayed C, counted the step, then failed in numpy's broadcasting; on float64 tensors after float32 ones
    # it kept float32 moments. An EMA broadcast a (1,) b1 into its (H,) average.
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 7, (5, 3)), np.arange(5)
    P = model.init_params(7, 3, 4, 8)
    opt = optim.AdamW(weight_decay=0.1)
    opt.step(P, model.loss_and_grads(P, X, Y)[1], 0.01)
    for other in (model.init_params(9, 3, 4, 8, seed=1), model.init_params(7, 3, 4, 8, dtype=np.float64)):
        before = {k: p.copy() for k, p in other.items()}
        with pytest.raises(ValueError, match="this AdamW has stepped a 'C' of float32 \\(7, 4\\), and is given one of "):
            opt.step(other, model.loss_and_grads(other, X, Y)[1], 0.01)
        assert opt.t == 1 and all(np.array_equal(before[k], other[k]) for k in other)
    avg = optim.EMA(P, 0.9)
    before = {k: a.copy() for k, a in avg.avg.items()}
    for given in ({**P, "b1": np.full(1, 5.0, np.float32)}, {**P, "b1": P["b1"].astype(np.float64)},
                  {**P, "Wd": np.zeros((12, 7), np.float32)}):
        with pytest.raises(ValueError, match="this average is of C float32 \\(7, 4\\), W1 float32 \\(12, 8\\), b1"):
            avg.update(given)
        assert all(np.array_equal(before[k], a) for k, a in avg.avg.items())
