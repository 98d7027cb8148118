"""Check hand-derived gradients against scipy's finite differences.

    python -m mlp_lm.gradcheck            # the model, every parameter and intermediate

prints one row per tensor, as in the manual-backprop lecture: whether the
analytic gradient equals the numerical one exactly, the largest absolute
difference, and that difference divided by the tensor's largest gradient
magnitude, which must be at most 1e-6.

The numerical derivatives come from scipy.differentiate.derivative, which
takes central differences of high order at shrinking steps and extrapolates
(Richardson), so in float64 it agrees with a correct gradient to about 1e-10
of its scale; a wrong backward pass is off by order one. Use it on your own
change: build a scalar function of one array, compute its gradient by hand,
and call `numerical_grad` and `assert_close`. See docs/gradcheck.md.
"""
import sys
from dataclasses import dataclass

import numpy as np

from . import layers
from .model import PARAM_NAMES, forward, loss_and_grads

TOLERANCE = 1e-6


def rel_error(a, n):
    """cs231n's relative error, elementwise max: |a - n| / max(1e-8, |a| + |n|)."""
    a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def numerical_grad(f, x, coords=None, *, initial_step=0.1):
    """d f / d x at the flat indices `coords` of x (all of them by default).

    f maps an array shaped like x to a float. Returns a float64 array with one
    derivative per coordinate, in the order of `coords`.
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
    return res.df


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
    scale: float  # largest |analytic| in the tensor
    ratio: float  # maxdiff / scale: the number judged against the tolerance
    worst: tuple  # index of the entry with the largest difference
    analytic_at_worst: float
    numerical_at_worst: float

    def ok(self, tol=TOLERANCE):
        return self.ratio <= tol

    def row(self):
        return (f"{self.name:10s} {str(self.shape):14s} exact: {str(self.exact):5s} "
                f"maxdiff: {self.maxdiff:.2e}  scale: {self.scale:.2e}  ratio: {self.ratio:.2e}")


def compare(name, analytic, numerical, coords=None):
    """Compare an analytic gradient with a numerical one.

    With coords (flat indices), numerical holds only those entries of the
    analytic gradient, in that order, and only they are compared.
    """
    a_full = np.asarray(analytic, dtype=np.float64)
    coords = np.arange(a_full.size) if coords is None else np.asarray(coords).reshape(-1)
    a = a_full.reshape(-1)[coords]
    n = np.asarray(numerical, dtype=np.float64).reshape(-1)
    diff = np.abs(a - n)
    i = int(np.argmax(diff)) if a.size else 0
    scale = float(np.max(np.abs(a_full))) if a_full.size else 0.0
    maxdiff = float(diff.max()) if a.size else 0.0
    ratio = maxdiff / scale if scale > 0 else maxdiff  # an all-zero gradient is judged absolutely
    worst = tuple(int(j) for j in np.unravel_index(int(coords[i]), a_full.shape)) if a.size else ()
    return Comparison(name, a_full.shape, bool(np.array_equal(a, n)), maxdiff, scale, ratio,
                      worst, float(a[i]) if a.size else 0.0, float(n[i]) if a.size else 0.0)


def assert_close(cmp, tol=TOLERANCE):
    """Raise AssertionError naming the tensor and its worst entry if the ratio exceeds tol."""
    if not cmp.ok(tol):
        raise AssertionError(
            f"gradient of {cmp.name} {cmp.shape} is off: max |analytic - numerical| / max |analytic| "
            f"= {cmp.ratio:.3e} > {tol:.0e}; worst entry {cmp.name}{list(cmp.worst)}: "
            f"analytic {cmp.analytic_at_worst:.10g}, numerical {cmp.numerical_at_worst:.10g}"
        )


# --- the whole model -------------------------------------------------------

def _loss_from(stage, value, params, X, Y):
    """The loss as a function of one intermediate of the forward pass (or of a parameter)."""
    p = dict(params)
    if stage in p:
        p[stage] = value
        logits_, _ = forward(p, X)
        return float(layers.softmax_cross_entropy_forward(logits_, Y)[0])
    B = X.shape[0]
    x = value
    order = ("emb", "embcat", "hpreact", "h", "logits")
    for nxt in order[order.index(stage) + 1:]:
        if nxt == "embcat":
            x = x.reshape(B, -1)
        elif nxt == "hpreact":
            x = x @ p["W1"] + p["b1"]
        elif nxt == "h":
            x = np.tanh(x)
        elif nxt == "logits":
            x = x @ p["W2"] + p["b2"]
    return float(layers.softmax_cross_entropy_forward(x, Y)[0])


def _intermediates(params, X):
    emb = params["C"][X]
    embcat = emb.reshape(X.shape[0], -1)
    hpreact = embcat @ params["W1"] + params["b1"]
    h = np.tanh(hpreact)
    logits_ = h @ params["W2"] + params["b2"]
    return {"logits": logits_, "h": h, "hpreact": hpreact, "embcat": embcat, "emb": emb}


def random_params(vocab_size, block_size, n_embd, n_hidden, seed=0):
    """Float64 parameters for checking: every entry random and non-zero, tanh not saturated.

    Zeros hide wrong backward passes (a missing term times zero is still zero), and
    saturated tanh units make dhpreact tiny; this init avoids both.
    """
    rng = np.random.default_rng(seed)
    V, T, E, H = vocab_size, block_size, n_embd, n_hidden
    return {
        "C": rng.standard_normal((V, E)),
        "W1": rng.standard_normal((T * E, H)) / np.sqrt(T * E),
        "b1": 0.5 * rng.standard_normal(H),
        "W2": rng.standard_normal((H, V)) / np.sqrt(H),
        "b2": 0.5 * rng.standard_normal(V),
    }


def check_model(params, X, Y, max_coords=None, seed=0):
    """Compare loss_and_grads with finite differences for every parameter and intermediate.

    Returns a list of Comparison rows, parameters first, then the intermediates in
    backward order. With max_coords, each tensor is checked on that many randomly
    sampled entries (the rest of the analytic gradient is not compared).
    """
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    _, grads, inter = loss_and_grads(params, X, Y, return_intermediates=True)
    values = _intermediates(params, X)
    rng = np.random.default_rng(seed)
    rows = []
    targets = [(k, params[k], grads[k]) for k in PARAM_NAMES]
    targets += [(k, values[k], inter[k]) for k in ("logits", "h", "hpreact", "embcat", "emb")]
    for name, value, analytic in targets:
        coords = np.arange(value.size)
        if max_coords is not None and value.size > max_coords:
            coords = rng.choice(value.size, size=max_coords, replace=False)
        num = numerical_grad(lambda v, name=name: _loss_from(name, v, params, X, Y), value, coords)
        rows.append(compare("d" + name, analytic, num, coords))
    return rows


def main(argv=None):
    from .cli import ArgumentParser, non_negative_int, positive_int

    ap = ArgumentParser(prog="python -m mlp_lm.gradcheck",
                        description="Check the model's hand-derived gradients against finite differences.")
    ap.add_argument("--vocab-size", type=positive_int, default=7, metavar="V", help="V (default 7)")
    ap.add_argument("--block-size", type=positive_int, default=3, metavar="T", help="T (default 3)")
    ap.add_argument("--n-embd", type=positive_int, default=4, metavar="E", help="E (default 4)")
    ap.add_argument("--n-hidden", type=positive_int, default=8, metavar="H", help="H (default 8)")
    ap.add_argument("--batch-size", type=positive_int, default=6, metavar="B", help="B (default 6)")
    ap.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                    help="random seed for parameters and data (default 0)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    params = random_params(args.vocab_size, args.block_size, args.n_embd, args.n_hidden, seed=args.seed)
    X = rng.integers(0, args.vocab_size, size=(args.batch_size, args.block_size))
    Y = rng.integers(0, args.vocab_size, size=args.batch_size)
    rows = check_model(params, X, Y)
    for r in rows:
        print(r.row(), " ok" if r.ok() else " FAIL")
    bad = [r for r in rows if not r.ok()]
    print(f"{len(rows) - len(bad)} of {len(rows)} gradients within {TOLERANCE:.0e} of their scale")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
