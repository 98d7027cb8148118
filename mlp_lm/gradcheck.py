"""Check hand-derived gradients against scipy's finite differences.

    python -m mlp_lm.gradcheck            # the model, every parameter and intermediate
    python -m mlp_lm.gradcheck --direct --dropout 0.3 --label-smoothing 0.1   # and the extras

prints one row per tensor, as in the manual-backprop lecture: whether the
analytic gradient equals the numerical one exactly, the largest absolute
difference, and that difference divided by the largest analytic gradient
compared, which must be at most 1e-6.

The numerical derivatives come from scipy.differentiate.derivative, which
takes central differences of high order at shrinking steps and extrapolates
(Richardson), so in float64 it agrees with a correct gradient to 1e-10 of
its scale or better (about 1e-12 in docs/gradcheck.md); a wrong backward pass
is off by order one. Use it on your own change: build a scalar function of
one array, compute its gradient by hand, and call `numerical_grad` and
`assert_close`. See docs/gradcheck.md.
"""
from dataclasses import dataclass

import numpy as np

from . import layers
from .model import PARAM_NAMES, loss_and_grads

TOLERANCE = 1e-6
ZERO_NOISE = 1e-8  # past this, a numerical derivative of a loss of order 1 is no rounding error
PROVES_NOTHING = "the gradient is all zeros where compared, so the check proves nothing: use other inputs"
MAX_COORDS = 20_000  # what the command checks entry by entry in well under a minute


def rel_error(a, n):
    """cs231n's relative error, elementwise max: |a - n| / max(1e-8, |a| + |n|)."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def numerical_grad(f, x, coords=None, *, initial_step=0.1, return_status=False):
    """d f / d x at the flat indices `coords` of x (all of them by default).

    f maps an array shaped like x to a float. Returns a float64 array with one
    derivative per coordinate, in the order of `coords`; with return_status=True
    also scipy's per-coordinate status (0: converged to its tolerance; negative:
    it stopped without, see scipy.differentiate.derivative).
    """
    x = np.array(x, dtype=np.float64)
    coords = np.arange(x.size) if coords is None else np.asarray(coords, dtype=np.int64).reshape(-1)
    from scipy.differentiate import derivative

    def along(t, k):
        # derivative() asks for f at many (step, coordinate) pairs at once; the loop is
        # over those evaluations, in the checker, never in the model's math.
        t, k = np.broadcast_arrays(t, k)
        out = np.empty(t.shape)
        for i, (ti, ki) in enumerate(zip(t.reshape(-1), k.reshape(-1))):
            xp = x.copy()
            xp.flat[ki] += ti
            out.flat[i] = f(xp)
        return out

    res = derivative(along, np.zeros(len(coords)), args=(coords,), initial_step=initial_step)
    return (res.df, res.status) if return_status else res.df


def directional_grad(f, x, v, *, initial_step=0.1):
    """d/dt f(x + t v) at t = 0: must equal sum(grad * v) for the true gradient."""
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    from scipy.differentiate import derivative

    def along(t):
        out = np.empty(t.shape)
        for i, ti in enumerate(t.reshape(-1)):
            out.flat[i] = f(x + ti * v)
        return out

    return float(derivative(along, 0.0, initial_step=initial_step).df)


@dataclass
class Comparison:
    """One row of the table: an analytic gradient against a numerical one."""

    name: str
    shape: tuple
    exact: bool
    maxdiff: float  # largest |analytic - numerical|
    scale: float  # largest |analytic| of the entries compared (the whole tensor unless coords are given)
    ratio: float  # maxdiff / scale: the number judged against the tolerance
    worst: tuple  # index of the entry with the largest difference
    analytic_at_worst: float
    numerical_at_worst: float
    problem: str = None  # why the comparison cannot pass whatever the numbers (wrong shape, proves nothing)
    unconverged: int = 0  # coordinates where scipy stopped short of its tolerance (reported, not judged)

    def ok(self, tol=TOLERANCE):
        return self.problem is None and self.ratio <= tol

    def row(self):
        text = (f"{self.name:10s} {str(self.shape):14s} exact: {str(self.exact):5s} "
                f"maxdiff: {self.maxdiff:.2e}  scale: {self.scale:.2e}  ratio: {self.ratio:.2e}")
        if self.unconverged:
            text += f"  ({self.unconverged} coordinate(s) where scipy did not converge)"
        return text + (f"  [{self.problem}]" if self.problem else "")


def compare(name, analytic, numerical, coords=None, *, shape=None, status=None):
    """Compare an analytic gradient with a numerical one, relative to the gradient's scale.

    The number judged is max |analytic - numerical| / max |analytic|, both maxima over
    the entries compared: relative, so a gradient of size 1e-9 is held to the same
    standard as one of size 1. With coords (flat indices), numerical holds only those
    entries of the analytic gradient, in that order, and only they are compared (and
    set the scale: a wrong entry left out of them cannot make the others look small).
    shape is the shape the gradient must have (its input's); it is checked before any
    value: both are flattened, so (1, H) against (H,) would otherwise pass. A numerical
    gradient of 2 or more dimensions is held to its own shape too; a 1-D one may be
    numerical_grad's flat row, so only shape can hold it. A gradient that is all zeros
    cannot pass: it proves nothing (a missing term times zero is zero).
    status is numerical_grad's per-coordinate scipy status, counted in the row.
    """
    a_full = np.asarray(analytic, dtype=np.float64)
    problem = None
    if shape is not None and a_full.shape != tuple(shape):
        problem = f"gradient has shape {a_full.shape} but its input has {tuple(shape)}"
    elif coords is None and np.ndim(numerical) > 1 and np.shape(numerical) != a_full.shape:
        problem = f"gradient has shape {a_full.shape} but the numerical one has {np.shape(numerical)}"
    coords = np.arange(a_full.size) if coords is None else np.asarray(coords).reshape(-1)
    n = np.asarray(numerical, dtype=np.float64).reshape(-1)
    if n.size != coords.size:
        problem = problem or f"{n.size} numerical values for {coords.size} coordinates"
        n = np.resize(n, coords.size)
    if problem and coords.size and coords.max() >= a_full.size:  # a gradient with fewer entries than its input
        n, coords = n[coords < a_full.size], coords[coords < a_full.size]  # the row fails on its problem anyway
    a = a_full.reshape(-1)[coords]
    diff = np.abs(a - n)
    i = int(np.argmax(diff)) if a.size else 0
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    maxdiff = float(diff.max()) if a.size else 0.0
    ratio = maxdiff / scale if scale > 0 else maxdiff
    if scale == 0 and problem is None:
        # Where the loss does not depend on the tensor, finite differences give 0 (or rounding
        # noise far below ZERO_NOISE); where they give more, the analytic zeros are wrong.
        problem = (f"the gradient is all zeros but the numerical one reaches {maxdiff:.2e}: the backward pass "
                   f"misses it" if maxdiff > ZERO_NOISE else PROVES_NOTHING)
    worst = tuple(int(j) for j in np.unravel_index(int(coords[i]), a_full.shape)) if a.size else ()
    unconverged = 0 if status is None else int(np.count_nonzero(np.asarray(status) != 0))
    return Comparison(name, a_full.shape, bool(np.array_equal(a, n)), maxdiff, scale, ratio,
                      worst, float(a[i]) if a.size else 0.0, float(n[i]) if a.size else 0.0, problem, unconverged)


def assert_close(cmp, tol=TOLERANCE):
    """Raise AssertionError naming the tensor and its worst entry if the comparison fails."""
    if cmp.problem:
        raise AssertionError(f"gradient of {cmp.name}: {cmp.problem}")
    if not cmp.ok(tol):
        raise AssertionError(
            f"gradient of {cmp.name} {cmp.shape} is off: max |analytic - numerical| / max |analytic| "
            f"= {cmp.ratio:.3e} > {tol:.0e}; worst entry {cmp.name}{list(cmp.worst)}: "
            f"analytic {cmp.analytic_at_worst:.10g}, numerical {cmp.numerical_at_worst:.10g}"
            + (f" (scipy did not converge at {cmp.unconverged} coordinate(s))" if cmp.unconverged else "")
        )


# --- the whole model -------------------------------------------------------

STAGES = ("emb", "embcat", "hpreact", "h", "logits")  # the intermediates checked, in forward order


def _forward_with(params, X, masks=None, override=None):
    """The forward pass written once more, in plain numpy, with any stage's value replaced.

    Deliberately independent of layers.py, so the check compares two
    implementations. embcat and h are taken after their dropout masks.
    """
    masks, override = masks or {}, override or {}
    B = X.shape[0]
    v = {"emb": override.get("emb", params["C"][X])}
    embcat = v["emb"].reshape(B, -1)
    v["embcat"] = override.get("embcat", embcat * masks["embcat"] if masks.get("embcat") is not None else embcat)
    v["hpreact"] = override.get("hpreact", v["embcat"] @ params["W1"] + params["b1"])
    h = np.tanh(v["hpreact"])
    v["h"] = override.get("h", h * masks["h"] if masks.get("h") is not None else h)
    logits_ = v["h"] @ params["W2"] + params["b2"]
    if "Wd" in params:
        logits_ = logits_ + v["embcat"] @ params["Wd"]
    v["logits"] = override.get("logits", logits_)
    return v


def _loss_from(stage, value, params, X, Y, masks=None, smoothing=0.0):
    """The loss as a function of one parameter or one intermediate of the forward pass."""
    if stage in params:
        v = _forward_with({**params, stage: value}, X, masks)
    else:
        v = _forward_with(params, X, masks, {stage: value})
    return float(layers.softmax_cross_entropy_forward(v["logits"], Y, smoothing)[0])


def random_params(vocab_size, block_size, n_embd, n_hidden, seed=0, direct=False):
    """Float64 parameters for checking: every entry random and non-zero, tanh not saturated.

    Zeros hide wrong backward passes (a missing term times zero is still zero), and
    saturated tanh units make dhpreact tiny; this init avoids both. (So Wd, which
    training starts at zero, is random here.)
    """
    rng = np.random.default_rng(seed)
    V, T, E, H = vocab_size, block_size, n_embd, n_hidden
    params = {
        "C": rng.standard_normal((V, E)),
        "W1": rng.standard_normal((T * E, H)) / np.sqrt(T * E),
        "b1": 0.5 * rng.standard_normal(H),
        "W2": rng.standard_normal((H, V)) / np.sqrt(H),
        "b2": 0.5 * rng.standard_normal(V),
    }
    if direct:
        params["Wd"] = rng.standard_normal((T * E, V)) / np.sqrt(T * E)
    return params


def check_model(params, X, Y, max_coords=None, seed=0, *, masks=None, smoothing=0.0):
    """Compare loss_and_grads with finite differences for every parameter and intermediate.

    Returns a list of Comparison rows, parameters first (with Wd last when
    present), then the intermediates in backward order. With max_coords, each
    tensor is checked on that many randomly sampled entries, always including its
    largest analytic entry, which sets the scale (the rest is not compared). masks (fixed dropout masks) and smoothing
    are passed to loss_and_grads and to the independent forward alike.
    """
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    _, grads, inter = loss_and_grads(params, X, Y, masks=masks, smoothing=smoothing, return_intermediates=True)
    values = _forward_with(params, X, masks)
    rng = np.random.default_rng(seed)
    rows = []
    names = [k for k in PARAM_NAMES if k in params] + [k for k in params if k not in PARAM_NAMES]
    targets = [(k, params[k], grads.get(k)) for k in names]
    targets += [(k, values[k], inter[k]) for k in reversed(STAGES)]
    for name, value, analytic in targets:
        if analytic is None:
            rows.append(Comparison("d" + name, value.shape, False, np.inf, 0.0, np.inf, (), 0.0, 0.0,
                                   "loss_and_grads returned no gradient for it"))
            continue
        coords = np.arange(value.size)
        if max_coords is not None and value.size > max_coords:
            coords = rng.choice(value.size, size=max_coords, replace=False)
            largest = int(np.argmax(np.abs(analytic))) if np.shape(analytic) == value.shape else None
            if largest is not None and largest not in coords:
                coords[0] = largest  # the entry that sets compare's scale is always one of those checked
        num, status = numerical_grad(lambda v, name=name: _loss_from(name, v, params, X, Y, masks, smoothing),
                                     value, coords, return_status=True)
        rows.append(compare("d" + name, analytic, num, coords, shape=value.shape, status=status))
    return rows


def main(argv=None):
    from .cli import ArgumentParser, UsageError, fraction, non_negative_int, positive_int

    ap = ArgumentParser(prog="python -m mlp_lm.gradcheck",
                        description="Check the model's hand-derived gradients against finite differences.")
    ap.add_argument("--vocab-size", type=positive_int, default=7, metavar="V", help="V (default 7)")
    ap.add_argument("--block-size", type=positive_int, default=3, metavar="T", help="T (default 3)")
    ap.add_argument("--n-embd", type=positive_int, default=4, metavar="E", help="E (default 4)")
    ap.add_argument("--n-hidden", type=positive_int, default=8, metavar="H", help="H (default 8)")
    ap.add_argument("--batch-size", type=positive_int, default=6, metavar="B", help="B (default 6)")
    ap.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                    help="random seed for parameters and data (default 0)")
    ap.add_argument("--direct", action="store_true", help="with the paper's direct connections Wd")
    ap.add_argument("--dropout", type=fraction, default=0.0, metavar="P",
                    help="a fixed dropout mask with this rate on embcat and h (default 0)")
    ap.add_argument("--label-smoothing", type=fraction, default=0.0, metavar="EPS", help="label smoothing eps (default 0)")
    args = ap.parse_args(argv)
    B, T, E, H, V = args.batch_size, args.block_size, args.n_embd, args.n_hidden, args.vocab_size
    if V < 2:
        raise UsageError("--vocab-size must be at least 2: with one symbol every gradient is zero, so the "
                         "check would prove nothing")
    n_coords = V * E + T * E * H + H + H * V + V + (T * E * V if args.direct else 0) + 5 * B * max(V, H, T * E)
    if n_coords > MAX_COORDS:
        raise UsageError(f"these sizes have {n_coords:,} coordinates to check, each by many loss evaluations; "
                         f"keep it under {MAX_COORDS:,} (the tests check the lecture's sizes on sampled entries)")
    rng = np.random.default_rng(args.seed)
    params = random_params(args.vocab_size, T, E, H, seed=args.seed, direct=args.direct)
    X = rng.integers(0, args.vocab_size, size=(B, T))
    Y = rng.integers(0, args.vocab_size, size=B)
    masks = {"embcat": layers.dropout_mask((B, T * E), args.dropout, rng),
             "h": layers.dropout_mask((B, H), args.dropout, rng)}
    rows = check_model(params, X, Y, masks=masks, smoothing=args.label_smoothing)
    for r in rows:
        print(r.row(), " ok" if r.ok() else " FAIL")
    bad = [r for r in rows if not r.ok()]
    print(f"{len(rows) - len(bad)} of {len(rows)} gradients within {TOLERANCE:.0e} of their scale")
    for r in bad:
        if r.problem:
            print(f"{r.name}: {r.problem}")
    if any(r.problem == PROVES_NOTHING for r in bad):
        hint = f", or a smaller --dropout (at {args.dropout:g} most units are dropped)" if args.dropout >= 0.5 else ""
        print(f"(zero gradients come from the inputs drawn: try another --seed{hint})")
    return 1 if bad else 0


if __name__ == "__main__":
    from .cli import run
    run(main, "python -m mlp_lm.gradcheck")
