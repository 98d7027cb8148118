"""Finite differences against a hand-derived gradient, reusable on any gradient code.

numerical_grad takes its derivatives from scipy.differentiate.derivative, which takes central
differences of high order at shrinking steps and extrapolates (Richardson), so in float64 it
agrees with a correct gradient to 1e-10 of its scale or better (about 1e-12 in
docs/gradcheck.md); a wrong backward pass is off by order one. compare and assert_close judge
one gradient against another, relative to its scale (comparison.py, whose names this module
passes on: from mlp_lm.finitediff import compare). Use them on your own change: build a scalar
function of one array, compute its gradient by hand, and call numerical_grad and assert_close.
modelcheck.py checks the whole model with them. See docs/gradcheck.md.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from .checks import is_whole
from .comparison import (PROVES_NOTHING, TOLERANCE, ZERO_NOISE, Comparison, _flat_coords, _real, _rounding,
                         assert_close, compare, rel_error)

# compare and the rest live in comparison.py; from mlp_lm.finitediff import compare, as the docs write it, works too
__all__ = ["numerical_grad", "directional_grad", "check_gradients", "compare", "assert_close", "rel_error",
           "Comparison", "TOLERANCE", "ZERO_NOISE", "PROVES_NOTHING"]


def _step(initial_step):
    """initial_step as a float, or ValueError: at 0, below or NaN every derivative is NaN, and at inf
    a bounded f (tanh) gives zeros that scipy reports as converged."""
    if isinstance(initial_step, bool) or not isinstance(initial_step, (int, float, np.integer, np.floating)) \
            or not 0 < initial_step < np.inf:
        raise ValueError(f"initial_step must be a finite number above 0, got {initial_step!r}")
    return float(initial_step)


def _tolerances(tolerances):
    """tolerances as scipy takes them (None, or a dict of atol and rtol), or ValueError: scipy reads a
    dict's keys by name, so a misspelt one would be ignored, and a number would fail inside it."""
    if tolerances is not None and not (isinstance(tolerances, Mapping) and set(tolerances) <= {"atol", "rtol"}
                                       and all(isinstance(t, (int, float, np.integer, np.floating))
                                               and not isinstance(t, bool) and 0 <= t < np.inf
                                               for t in tolerances.values())):
        raise ValueError(f"tolerances must be None or a dict of atol and rtol, each a finite number of 0 or more, "
                         f"such as dict(atol=1e-12), got {tolerances!r}")
    return None if tolerances is None else dict(tolerances)


def _value(v):
    """What f returned, as a float, or ValueError: f must give one real number, its loss, in float64."""
    if isinstance(v, (bool, str, bytes)) or np.ndim(v) != 0 or np.iscomplexobj(v):
        raise ValueError(f"f must return one real number (the loss), got {type(v).__name__} {np.shape(v)}")
    name, eps = _rounding(v)
    if eps:  # its rounding, divided by a small step, swamps the differences: a correct gradient would look wrong
        raise ValueError(f"f returned a {name} loss, known only to about {eps:.0e} of its size, too coarse for "
                         f"finite differences: compute it in float64")
    try:
        return float(v)
    except (TypeError, ValueError):  # None, or an object that is no number
        raise ValueError(f"f must return one real number (the loss), got {type(v).__name__}") from None


def _check_repeatable(f, x):
    """ValueError unless f gives the same value twice at x. One that draws anew on each call (a
    dropout mask) makes every difference noise, and a correct gradient look wrong."""
    a, b = _value(f(x.copy())), _value(f(x.copy()))
    same = a == b or (np.isfinite(a) and np.isfinite(b) and abs(a - b) <= 1e-12 * max(1.0, abs(a)))  # (inf == inf)
    if not (same or (np.isnan(a) and np.isnan(b))):
        raise ValueError(f"f gave two values at the same point ({a!r} and {b!r}): it draws something at random on "
                         f"each call (a dropout mask?), or changes what it reads, so its differences are noise; draw "
                         f"it once, outside f, and leave the arrays f is given as they were")


def _coarsest(v):
    """(name, epsilon) of the coarsest of bfloat16, float16 and float32 that holds every number of v
    exactly, or None when float32 does not."""
    with np.errstate(over="ignore", invalid="ignore"):  # a loss past float32's range is no float32 number
        v32 = v.astype(np.float32)
        if not np.array_equal(v32, v):
            return None
        if not np.any(v32.view(np.uint32) & 0xFFFF):  # bfloat16: float32's top 16 bits
            return "bfloat16", 2.0 ** -7
        if np.array_equal(v.astype(np.float16), v):
            return "float16", 2.0 ** -10
    return "float32", 2.0 ** -23


def _check_not_float32(values, status, df, step, along_v=False):
    """ValueError when scipy did not converge (status), or "converged" to a derivative of exactly 0 (df), and every
    value f gave was a float32 number (4 or more different ones, not all whole numbers): f computed its loss in
    float32, or coarser, and returned it as a float, whose rounding, divided by a small step, swamps the
    differences, or whose steps, once below its resolution, all give one value, so that two estimates of 0 agree
    (a bfloat16 loss whose derivative along v is 1.62, on one machine's BLAS). scipy's word is needed as well as
    the values: a float64 loss of dyadic numbers gives float16 numbers only (10 * sum(x) at whole x, the steps
    0.1 * 10 = 1.0 and its halves), and scipy converges on it to the right answer. What the check cannot see: a
    coarse loss on which scipy converges to a slope that is off (a float16 one at 1.25 for 1.286).
    With a step that is no power of two, x + t is no float32 number, and a float64 loss of it lands on
    one about once in 2^29 values; with a power of two (initial_step=1.0, 2**-10), a float64 loss of
    float32 data can land on float32 numbers at every step, so the check is not made. Nor can it see a
    float32 loss that went through float64 arithmetic after (a weight decay added, a mean over 3)."""
    unconverged, flat = status != 0, (status == 0) & (df == 0)
    if not (unconverged.any() or flat.any()) or math.frexp(step)[0] == 0.5:
        return
    v = np.unique(np.concatenate([np.reshape(a, -1) for a in values]))
    v = v[np.isfinite(v)]
    if len(v) < 4 or np.array_equal(v, np.round(v)) or (coarse := _coarsest(v)) is None:  # a loss that counts
        return
    name, eps = coarse
    eps = f"{eps:.0e}".replace("e-0", "e-")  # 1e-7, not 1e-07
    at = unconverged if unconverged.any() else flat
    where = "along v" if along_v else f"at {np.count_nonzero(at)} of {at.size} coordinate(s)"
    scipy_said = (f", and scipy did not converge {where}" if unconverged.any() else
                  f", and scipy's derivative is exactly 0 {where}, where its smallest steps all gave one value")
    raise ValueError(f"f's values are all {name} numbers (the {len(v):,} different ones it gave){scipy_said}: "
                     f"f computes the loss in {name} and returns it as a float (or loses as many "
                     f"digits to cancellation, a large number added and taken away), so it is known only to about "
                     f"{eps} of its size, too coarse for finite differences: compute it in float64")


def numerical_grad(f, x, coords=None, *, initial_step=0.1, tolerances=None, return_status=False):
    """d f / d x at the flat indices `coords` of x (all of them by default).

    f maps an array shaped like x to a float, computed in float64 and the same each time it is
    asked (a float32 loss, returned as one or as a float, or one that draws a fresh dropout mask,
    is refused: both make a correct gradient look wrong). Returns a float64 array with one
    derivative per coordinate, in the order of `coords`; with return_status=True also scipy's
    per-coordinate status (0: converged to its tolerance; negative: it stopped without, see
    scipy.differentiate.derivative).
    tolerances goes to scipy as it is. Its default absolute tolerance is the smallest normal float64,
    in effect 0, so where a derivative is tiny against f's value (below about 1e-5 of a loss of
    order 1) scipy keeps halving its steps until rounding takes over; dict(atol=1e-12 * |f|) stops
    it in time (docs/gradcheck.md).
    """
    x = np.array(_real(x, "x"))
    coords = _flat_coords(coords, x.size)
    initial_step, tolerances = _step(initial_step), _tolerances(tolerances)
    _check_repeatable(f, x)
    from scipy.differentiate import derivative

    values = []  # every value f gave, for _check_not_float32

    def along(t, k):
        # derivative() asks for f at many (step, coordinate) pairs at once; the loop is
        # over those evaluations, in the checker, never in the model's math.
        t, k = np.broadcast_arrays(t, k)
        out = np.empty(t.shape)
        for i, (ti, ki) in enumerate(zip(t.reshape(-1), k.reshape(-1))):
            xp = x.copy()
            xp.flat[ki] += ti
            out.flat[i] = _value(f(xp))
        values.append(out)
        return out

    res = derivative(along, np.zeros(len(coords)), args=(coords,), initial_step=initial_step, tolerances=tolerances)
    _check_not_float32(values, res.status, res.df, initial_step)
    return (res.df, res.status) if return_status else res.df


def directional_grad(f, x, v, *, initial_step=0.1):
    """d/dt f(x + t v) at t = 0: must equal sum(grad * v) for the true gradient."""
    x, v = _real(x, "x"), _real(v, "v")
    if x.shape != v.shape:  # x + t * v would broadcast to another shape than f's argument
        raise ValueError(f"x and v must have one shape, got {x.shape} and {v.shape}")
    initial_step = _step(initial_step)
    _check_repeatable(f, x)
    from scipy.differentiate import derivative

    values = []

    def along(t):
        out = np.empty(t.shape)
        for i, ti in enumerate(t.reshape(-1)):
            out.flat[i] = _value(f(x + ti * v))
        values.append(out)
        return out

    res = derivative(along, 0.0, initial_step=initial_step)
    _check_not_float32(values, np.atleast_1d(res.status), np.atleast_1d(res.df), initial_step, along_v=True)
    return float(res.df)


def sampled_coords(shape, analytic, max_coords, rng):
    """Flat indices to check of a tensor of `shape`: all of them, or with max_coords, that many drawn at
    random, always with the analytic gradient's largest entry among them, since it sets compare's scale."""
    size = int(np.prod(shape))
    if max_coords is None or size <= max_coords:
        return np.arange(size)
    coords = rng.choice(size, size=max_coords, replace=False)
    largest = int(np.argmax(np.abs(analytic))) if np.shape(analytic) == tuple(shape) else None
    if largest is not None and largest not in coords:
        coords[0] = largest
    return coords


def check_gradients(loss, params, grads, *, max_coords=None, seed=0, tolerances=None, initial_step=0.1,
                    zero_noise=None):
    """Your own model's gradients against finite differences, a tensor at a time: one Comparison row each.

    loss(params) is your loss in float64 for a dict of arrays by name; grads holds your gradients by the
    same names, each of its parameter's shape. Each tensor is varied alone, the others held at params (a
    tensor used twice, as a tied embedding, is then checked through both uses). max_coords checks that many
    entries of each tensor, drawn with seed, its largest analytic entry always among them; tolerances and
    initial_step go to numerical_grad (a smaller step for a loss with kinks, ReLU's, near the point), and
    zero_noise to compare (by default ZERO_NOISE times the loss, at least ZERO_NOISE). Rows are named "d" +
    the parameter's name, in params' order; assert_close(row) raises for one that fails. Gradients of
    intermediates need a loss of each: numerical_grad and compare.
    """
    if not isinstance(params, Mapping) or not isinstance(grads, Mapping):
        raise ValueError(f"params and grads must be dicts of arrays by name, got {type(params).__name__} and "
                         f"{type(grads).__name__}")
    if not params or not all(isinstance(k, str) for k in params):  # none would check nothing, and pass
        raise ValueError(f"params must name one array or more, by strings, got the names {list(params)!r}")
    strays = [k for k in grads if k not in params]
    if strays:  # a misspelt name would leave its parameter unchecked, and say so only as a missing gradient
        raise ValueError(f"grads holds {', '.join(map(repr, strays))}, which params does not "
                         f"({', '.join(map(repr, params))})")
    if max_coords is not None and not is_whole(max_coords):  # 0 would check nothing, and pass
        raise ValueError(f"max_coords must be None or a whole number of entries, at least 1, got {max_coords!r}")
    if zero_noise is not None and (isinstance(zero_noise, bool) or not isinstance(zero_noise, numbers.Real)
                                   or not 0 <= zero_noise < np.inf):
        raise ValueError(f"zero_noise must be a finite number of 0 or more, got {zero_noise!r}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be a whole number of 0 or more, or None, got {seed!r}") from None
    params = {k: np.array(_real(v, f"params[{k!r}]")) for k, v in params.items()}  # float64 copies
    given = {k: v.copy() for k, v in params.items()}
    L = _value(loss(dict(params)))
    moved = [k for k, v in params.items() if not np.array_equal(v, given[k], equal_nan=True)]
    if moved:  # every difference would then be taken about a point that moves
        raise ValueError(f"loss changed params[{moved[0]!r}] in place (an alias written to, such as h = p['b']; "
                         f"h += ...?): it must leave the arrays it is given as they were")
    if not np.isfinite(L):  # every derivative of it would be nan
        raise ValueError(f"loss is {L} at params: check gradients at a point where it is finite")
    if zero_noise is None:
        zero_noise = ZERO_NOISE * max(1.0, abs(L))  # rounding grows with the loss
    rows = []
    for name, value in params.items():
        if name not in grads:
            rows.append(Comparison.missing("d" + name, value.shape, "no gradient was given for it"))
            continue
        coords = sampled_coords(value.shape, grads[name], max_coords, rng)
        try:
            num, status = numerical_grad(lambda v, name=name: loss({**params, name: v}), value, coords,
                                         initial_step=initial_step, tolerances=tolerances, return_status=True)
        except ValueError as e:  # a float32 loss, say: which tensor was being varied, and that f is the loss
            raise ValueError(f"varying params[{name!r}], with f your loss: {e}") from None
        rows.append(compare("d" + name, grads[name], num, coords, shape=value.shape, status=status,
                            zero_noise=zero_noise))
    return rows
