"""Two gradients side by side: compare judges one against the other relative to its scale, and
assert_close raises with the worst entry (and, where the numbers show it, the slip: a transposed
weight, a factor such as 1/B, float32's rounding). finitediff.py's numerical_grad gives the other
side for a hand-derived gradient; another program's gradient can be it too (docs/gradcheck.md,
checking your code against ours). finitediff re-exports all of it: from mlp_lm.finitediff import
compare works as before.
"""
import math
from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-6
ZERO_NOISE = 1e-8  # past this, a numerical derivative of a loss of order 1 is no rounding error (scaled by a larger loss)
PROVES_NOTHING = ("the gradient is all zeros, or no larger than rounding noise, where compared, so the check proves "
                  "nothing: use other inputs")


def rel_error(a, n):
    """cs231n's relative error, elementwise max: |a - n| / max(1e-8, |a| + |n|)."""
    a, n = _real(a, "a"), _real(n, "n")
    if a.shape != n.shape or a.size == 0:  # (3,) against (3, 1) would compare every pair
        raise ValueError(f"a and n must be arrays of one shape, not empty, got {a.shape} and {n.shape}")
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def _real(x, name):
    """x as a float64 array; ValueError for a complex one, whose imaginary part the cast would drop."""
    if x is None:  # np.asarray(None, dtype=float) is nan: a gradient forgotten would fail as "nan there"
        raise ValueError(f"{name} is None, not an array")
    try:
        if not np.iscomplexobj(x):
            return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):  # a dict of gradients, a string, a ragged list: float()'s complaint says less
        raise ValueError(f"{name} must be an array of real numbers, got {type(x).__name__}"
                         + (": one tensor at a time" if isinstance(x, dict) else "")) from None
    raise ValueError(f"{name} is complex; gradients of a real loss are real")


def _flat_coords(coords, size):
    """coords as flat indices (n,) into an array of `size` entries (all of them for None), or ValueError:
    a float would be truncated and a negative index read from the end, each checking another entry."""
    if coords is None:
        return np.arange(size)
    c = np.asarray(coords).reshape(-1)
    if c.size and (c.dtype.kind not in "iu" or c.min() < 0 or c.max() >= size):
        raise ValueError(f"coords must be flat indices in 0..{size - 1}, got {c.dtype} from {c.min()} to {c.max()}")
    return c.astype(np.int64)


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
    rounding: tuple = None  # (dtype name, its machine epsilon) of the less precise of the two, if below float64
    compared: int = 0  # how many entries were compared
    hint: str = None  # what a failure looks like, where the numbers say it (transposed, off by a constant factor)
    unconverged_at_worst: bool = False  # whether the worst entry's is one of them (assert_close's hint then)

    @classmethod
    def missing(cls, name, shape, why):
        """The row of a tensor whose gradient was not given: it fails, saying why."""
        return cls(name, shape, False, np.inf, 0.0, np.inf, (), 0.0, 0.0, why)

    def ok(self, tol=TOLERANCE):
        return self.problem is None and self.ratio <= _tol(tol)

    def unconverged_count(self):  # "94 of 96", or "94" where the number compared was not given
        return f"{self.unconverged} of {self.compared}" if self.compared else str(self.unconverged)

    def row(self):
        text = (f"{self.name:10s} {str(self.shape):14s} exact: {str(self.exact):5s} "
                f"maxdiff: {self.maxdiff:.2e}  scale: {self.scale:.2e}  ratio: {self.ratio:.2e}")
        if self.unconverged:
            text += f"  ({self.unconverged_count()} coordinate(s) where scipy did not converge)"
        return text + (f"  [{self.problem}]" if self.problem else f"  [{self.hint}]" if self.hint else "")


def _tol(tol):
    """tol as a float, or ValueError: at 0 or below every row fails, and NaN fails them without a word."""
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not 0 < tol < np.inf:
        raise ValueError(f"tol must be a finite number above 0, such as {TOLERANCE:.0e}, got {tol!r}")
    return float(tol)


def _shape(shape):
    """shape as a tuple of whole numbers, or ValueError (a bare number would fail inside numpy)."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"shape must be a tuple of whole numbers, such as (7, 4) or (8,), got {shape!r}")
    return tuple(int(d) for d in dims)


def compare(name, analytic, numerical, coords=None, *, shape=None, status=None, zero_noise=ZERO_NOISE):
    """Compare an analytic gradient with a numerical one, relative to the gradient's scale.

    The number judged is max |analytic - numerical| / max |analytic|, both maxima over
    the entries compared: relative, so a gradient of size 1e-9 is held to the same
    standard as one of size 1 (though numerical_grad, at its default tolerances, cannot meet
    it for a gradient below about 1e-5 of a loss of order 1: see its tolerances). With
    coords (flat indices), numerical holds only those entries of the analytic gradient, in
    that order, and only they are compared (and set the scale: a wrong entry left out of
    them cannot make the others look small).
    shape is the shape the gradient must have (its input's); it is checked before any
    value: both are flattened, so (1, H) against (H,) would otherwise pass. A numerical
    gradient of 2 or more dimensions is held to its own shape too; a 1-D one may be
    numerical_grad's flat row, so only shape can hold it. A gradient that is all zeros
    cannot pass: it proves nothing (a missing term times zero is zero). zero_noise is how far
    from zero a numerical derivative may be from rounding alone: ZERO_NOISE suits a loss of order
    1, and a loss of size L wants about ZERO_NOISE * L (modelcheck.check_model passes that).
    status is numerical_grad's per-coordinate scipy status, counted in the row.
    """
    shape = None if shape is None else _shape(shape)
    rounding = max((_rounding(x) for x in (analytic, numerical)), key=lambda r: r[1])
    a_full, numerical = _real(analytic, "the analytic gradient"), _real(numerical, "the numerical gradient")
    problem = None
    if shape is not None and a_full.shape != shape:
        problem = f"gradient has shape {a_full.shape} but its input has {shape}"
        if a_full.ndim == 2 and a_full.shape == shape[::-1]:
            problem += " (transposed? a weight's gradient has the weight's own layout)"
    elif coords is None and np.ndim(numerical) > 1 and np.shape(numerical) != a_full.shape:
        problem = f"gradient has shape {a_full.shape} but the numerical one has {np.shape(numerical)}"
    coords = _flat_coords(coords, a_full.size if shape is None else int(np.prod(shape)))
    whole = coords.size == a_full.size and np.array_equal(coords, np.arange(a_full.size))  # what _hint needs
    n = numerical.reshape(-1)
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
        # noise far below zero_noise); where they give more, the analytic zeros are wrong.
        problem = (f"the gradient is all zeros but the numerical one reaches {maxdiff:.2e}: the backward pass "
                   f"misses it" if maxdiff > zero_noise else PROVES_NOTHING)
    elif problem is None and scale <= zero_noise < maxdiff:  # rounding noise where there should be a gradient
        problem = (f"the gradient is all but zero (at most {scale:.2e}, the size of rounding noise) but the "
                   f"numerical one reaches {maxdiff:.2e}: the backward pass misses it")
    elif problem is None and scale <= zero_noise and ratio > TOLERANCE:  # both sides noise (saturated units, a unit
        problem = PROVES_NOTHING  # dropped nearly everywhere): a failure there says nothing about the backward pass
    worst = tuple(int(j) for j in np.unravel_index(int(coords[i]), a_full.shape)) if a.size else ()
    status = None if status is None else np.asarray(status).reshape(-1)
    unconverged = 0 if status is None else int(np.count_nonzero(status != 0))
    # only the worst entry's own status can explain a failure: others that did not converge (zero rows of
    # symbols the batch never uses, with scipy's default tolerances) leave its numerical value as good as any
    at_worst = bool(status is not None and a.size and status.size == coords.size and status[i] != 0)
    hint = _hint(a_full, n, scale) if problem is None and whole and ratio > HINTED else None
    if problem is None and hint is None and ratio > HINTED and scale > zero_noise and np.max(np.abs(n)) <= zero_noise:
        hint = NOT_READ  # (scipy does not converge on a derivative of 0 at a relative tolerance: no word of it then)
    return Comparison(name, a_full.shape, bool(np.array_equal(a, n)), maxdiff, scale, ratio,
                      worst, float(a[i]) if a.size else 0.0, float(n[i]) if a.size else 0.0, problem, unconverged,
                      rounding if rounding[1] else None, int(a.size), hint, at_worst)


NOT_READ = ("the numerical gradient is all but zero: the loss does not change with this tensor; does it read the "
            "array it is given, or the model's own?")
HINTED = 1e-3  # a ratio past which a failing row may be a slip _hint knows: far past any tolerance, or rounding


def _hint(analytic, n, scale):
    """What a failing comparison of a whole gradient looks like, where it looks like a common slip: a square
    weight's gradient transposed (a wrong shape says so already), or every entry off by one factor (a 1/B left
    out or applied twice; -1, a sign), which takes three entries or more that are not zero to tell. None
    otherwise. n: the numerical gradient, flat."""
    with np.errstate(all="ignore"):  # a gradient of inf or nan matches neither
        if analytic.ndim == 2 and analytic.shape[0] == analytic.shape[1] and \
                np.max(np.abs(analytic.T.reshape(-1) - n)) <= TOLERANCE * scale:
            return "its transpose matches: transposed? a weight's gradient has the weight's own layout"
        a = analytic.reshape(-1)
        c = float(a @ n) / float(n @ n) if np.count_nonzero(n) >= 3 and float(n @ n) > 0 else 0.0
        if np.isfinite(c) and c != 0 and np.max(np.abs(a - c * n)) <= TOLERANCE * scale:
            slip = ("a sign flipped?" if c < 0 else "a factor left out or applied twice (a 1/B?)" if max(c, 1 / c) >= 1.5
                    else "a constant factor off")
            return f"the analytic gradient is {c:.6g} times the numerical one, entry for entry: {slip}"
    return None


LOW_PRECISION = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}  # machine epsilons


def _rounding(x):
    """(dtype name, machine epsilon) of an array of a precision below float64's, else ("float64", 0.0);
    numpy's dtypes and torch's alike (a torch.dtype prints as "torch.float32")."""
    dtype = getattr(x, "dtype", "")
    name = np.dtype(dtype).name if isinstance(dtype, np.dtype) else str(dtype).removeprefix("torch.")  # >f4 too
    return (name, LOW_PRECISION[name]) if name in LOW_PRECISION else ("float64", 0.0)


def assert_close(cmp, tol=TOLERANCE):
    """Raise AssertionError naming the tensor and its worst entry if the comparison fails."""
    tol = _tol(tol)
    if cmp.problem:
        tiny = cmp.problem == PROVES_NOTHING and cmp.scale > 0  # judged noise by zero_noise, made for a loss near 1
        raise AssertionError(f"gradient of {cmp.name}: {cmp.problem}" + (
            f" (its largest entry, {cmp.scale:.2e}, is within zero_noise, the rounding noise allowed for; if it is no "
            f"noise, pass a smaller zero_noise: about {ZERO_NOISE:.0e} times a loss far below 1, see "
            f"docs/gradcheck.md)" if tiny else ""))
    if not cmp.ok(tol):
        nan = (f"; the analytic gradient is {cmp.analytic_at_worst} there"
               if not math.isfinite(cmp.analytic_at_worst) else
               "; the numerical gradient is nan there: f gave nan at a point numerical_grad tried, a step past "
               "the edge of f's domain (a log or a square root near 0?), so pass it a smaller initial_step (see "
               "docs/gradcheck.md)" if math.isnan(cmp.numerical_at_worst) else "")
        raise AssertionError(
            f"gradient of {cmp.name} {cmp.shape} is off: max |analytic - numerical| / max |analytic| "
            f"= {cmp.ratio:.3e} > {tol:.0e}; worst entry {cmp.name}{list(cmp.worst)}: "
            f"analytic {cmp.analytic_at_worst:.10g}, numerical {cmp.numerical_at_worst:.10g}" + nan
            + (f"; {cmp.hint}" if cmp.hint else "")
            + (f" (scipy did not converge there, and at {cmp.unconverged_count()} coordinate(s) in all: f is noisy "
               f"at small steps (computed in float32, then returned as a float?), or a derivative is tiny against the "
               f"loss and the steps shrank until rounding took over, which numerical_grad's tolerances=dict(atol=...) "
               f"stops; or f has a kink near the point (ReLU, abs, max) that the steps straddle, which a smaller "
               f"initial_step avoids; see docs/gradcheck.md)" if cmp.unconverged_at_worst and not nan
               and cmp.hint != NOT_READ else "")
            + (f"; {cmp.rounding[0]}'s rounding alone can be this far off (its epsilon is {cmp.rounding[1]:.0e}, "
               f"and a network's sums add up many): compare in float64"
               + (" (against float64, float32 needs a tolerance of about 1e-4)" if cmp.rounding[0] == "float32" else "")
               if cmp.rounding and cmp.ratio < 1000 * cmp.rounding[1] else "")
        )
