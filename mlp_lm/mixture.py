"""Mixing two next-symbol models, as the paper mixes its network with an n-gram.

Both mixtures have one weight lambda in [0, 1], chosen to minimise the dev NLL
(never the test NLL), then reported on test:

    linear (the paper's):  p(w | h) = lambda p_mlp(w | h) + (1 - lambda) p_ngram(w | h)
    log-linear:            p(w | h) = p_mlp(w | h)^lambda p_ngram(w | h)^(1 - lambda) / Z(h),
                           Z(h) = sum_v p_mlp(v | h)^lambda p_ngram(v | h)^(1 - lambda)

The linear mixture needs only each model's probability of the target; the
log-linear one needs whole distributions for its normaliser Z. Both NLLs are
convex in lambda (a log of a linear function is concave; a log-sum-exp of a
linear function is convex), so a bounded scalar search finds the minimum of the
linear one. The log-linear one costs a pass over whole distributions per lambda
tried, so it is found by Newton's method on its first two derivatives
(loglinear_derivatives): about 5 passes where a bounded search takes about 12.
"""
import math

import numpy as np

from . import model, runtime
from .checks import check_chunk_size, check_indices, is_real
from .counting import KneserNey

TINY = 1e-300  # the floor under a probability before its log; a mixture never needs it at lambda < 1


def logsumexp(s):
    """log sum_v exp(s[n, v]) for each row of s (N, V) float64: (N,).

    Shifted by each row's max first, so exp cannot overflow and the largest term is exp(0) = 1.
    (scipy.special.logsumexp computes the same with more general checks, two to three times
    slower on these arrays; the mixtures spend much of their time here on a large vocabulary.)
    """
    m = s.max(axis=1)  # (N,)
    m[~np.isfinite(m)] = 0.0  # a row of -inf stays -inf (log 0), not NaN from -inf - -inf
    with np.errstate(divide="ignore"):  # that log 0 is the answer, not an accident
        return m + np.log(np.exp(s - m[:, None]).sum(axis=1))


def mlp_log_probs(params, X, chunk_size=None):
    """log p_mlp(. | X) (N, V) float64, computed a chunk of rows at a time (model.chunk_rows)."""
    chunk_size = check_chunk_size(chunk_size) or model.chunk_rows(params, len(X))
    out = []
    for start in range(0, len(X), chunk_size):  # over chunks of data, not the math
        z = model.logits(params, X[start:start + chunk_size]).astype(np.float64)  # (n, V)
        out.append(z - logsumexp(z)[:, None])
    return np.concatenate(out) if out else np.empty((0, params["b2"].shape[0]))


def check_mixed(lam, a, b, Y=None):
    """ValueError unless a and b are one shape: the targets' probabilities (N,), in [0, 1], with lam in
    [0, 1] (else the mixture is no distribution), or with Y (N,) the whole log distributions (N, V),
    Y's symbol indices in 0..V-1 and lam finite (renormalised, any exponent gives a distribution).
    numpy would broadcast a (N, 1) array against a (N,) one, and read a target of -1 as the last symbol."""
    a, b = np.asarray(a), np.asarray(b)
    if not is_real(lam) or not (0 <= lam <= 1 if Y is None else math.isfinite(lam)):  # NaN fails both
        raise ValueError(f"the mixture's weight must be {'in [0, 1]' if Y is None else 'finite'}, got {lam!r}")
    if Y is None and (a.ndim != 1 or a.shape != b.shape or not (  # (1 + 1e-9: a sum's rounding is no mistake)
            np.all((0 <= a) & (a <= 1 + 1e-9)) and np.all((0 <= b) & (b <= 1 + 1e-9)))):
        raise ValueError(f"the targets' probabilities must be two arrays (N,) in [0, 1], got {a.shape} and {b.shape}")
    if a.shape[:1] == (0,):  # the mean NLL of nothing: NaN, with numpy's warning
        raise ValueError("there are no targets to mix the probabilities of (N = 0)")
    if Y is not None:
        Y = np.asarray(Y)
        if a.ndim != 2 or a.shape != b.shape or Y.shape != a.shape[:1]:
            raise ValueError(f"the log distributions must be two arrays (N, V) and Y (N,), got {a.shape}, {b.shape} "
                             f"and {Y.shape}")
        check_indices(Y, a.shape[1], "Y")


def linear_nll(lam, p_a, p_b):
    """Mean NLL of lam * p_a + (1 - lam) * p_b, given each model's probability of the targets (N,)."""
    check_mixed(lam, p_a, p_b)
    return float(-np.mean(np.log(np.maximum(lam * p_a + (1 - lam) * p_b, TINY))))


def loglinear_nll(lam, logp_a, logp_b, Y):
    """Mean NLL of the renormalised p_a^lam p_b^(1 - lam), given whole log distributions (N, V)."""
    check_mixed(lam, logp_a, logp_b, Y)
    s = lam * logp_a + (1 - lam) * logp_b  # (N, V), unnormalised log probabilities
    return float(np.mean(logsumexp(s) - s[np.arange(len(Y)), Y]))


def loglinear_derivatives(lam, logp_a, logp_b, Y):
    """The log-linear NLL at lam and its first two derivatives in lam, each summed over the rows.

    With delta = log p_a - log p_b, s = log p_b + lam * delta and q = softmax(s), the mixture:

        nll   = logsumexp(s) - s_y
        nll'  = sum_v q_v delta_v - delta_y            (the slope of logsumexp(s): E_q[delta])
        nll'' = sum_v q_v (delta_v - E_q[delta])^2 >= 0  (the derivative of E_q[delta]: a variance)

    Returns (nll, nll', nll'') as Python floats, sums over the N rows of (N, V) log distributions.
    """
    check_mixed(lam, logp_a, logp_b, Y)
    rows = np.arange(len(Y))
    delta = logp_a - logp_b  # (N, V), derivations.md's letters
    s = logp_b + lam * delta  # (N, V)
    lse = logsumexp(s)  # (N,)
    nll = lse - s[rows, Y]
    q = np.exp(s - lse[:, None], out=s)  # (N, V), the mixture's probabilities, in s's place
    mean_delta = np.einsum("nv,nv->n", q, delta)  # (N,), E_q[delta] row by row
    delta -= mean_delta[:, None]  # its deviation from its mean under q: delta_y - E_q[delta] is now delta[rows, Y]
    var_delta = np.einsum("nv,nv,nv->n", q, delta, delta)  # (N,)
    return float(nll.sum()), float(-delta[rows, Y].sum()), float(var_delta.sum())


def newton_lambda(derivatives, tol=1e-7, max_passes=50):
    """The lambda in [0, 1] minimising a convex NLL, given derivatives(lam) -> (nll, nll', nll'').

    Newton's steps, kept inside a bracket [lo, hi] that holds the minimum and shrinks with
    each pass (nll' > 0 moves hi down, nll' < 0 moves lo up); a step that would leave the
    bracket is replaced by its midpoint, so it cannot fail to converge. Derivatives that are
    not finite (a log probability of -inf makes them NaN) raise ValueError: no answer is
    better than a wrong one.
    """
    def slope_and_curvature(lam):
        _, slope, curvature = derivatives(lam)
        if not (math.isfinite(slope) and math.isfinite(curvature)):
            raise ValueError(f"the mixture's derivatives at lambda = {lam:.6g} are not finite ({slope}, {curvature})")
        return slope, curvature

    slope_lo, _ = slope_and_curvature(0.0)
    if slope_lo >= 0:  # rising from lambda = 0 on: the second model alone is best
        return 0.0
    slope_hi, _ = slope_and_curvature(1.0)
    if slope_hi <= 0:  # still falling at lambda = 1: the first model alone is best
        return 1.0
    lo, hi = 0.0, 1.0
    lam = slope_lo / (slope_lo - slope_hi)  # where the slope would cross zero if it were a straight line
    for _ in range(max_passes):
        slope, curvature = slope_and_curvature(lam)
        if slope == 0:  # the minimum itself
            return lam
        lo, hi = (lo, lam) if slope > 0 else (lam, hi)
        new = lam - slope / curvature if curvature > 0 else lo - 1.0  # (no curvature: no Newton step)
        if not lo <= new <= hi:
            new = 0.5 * (lo + hi)
        if abs(new - lam) < tol or hi - lo < tol:
            return new
        lam = new
    return lam


def choose_lambda(nll_of_lambda):
    """The lambda in [0, 1] with the lowest NLL, by bounded scalar search (the NLL is convex)."""
    from scipy.optimize import minimize_scalar  # here, not at the top: scipy.optimize takes half a second to import
    res = minimize_scalar(nll_of_lambda, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-5})
    best = float(res.x)
    for end in (0.0, 1.0):  # the bounded search never evaluates exactly at an end
        if nll_of_lambda(end) < nll_of_lambda(best):
            best = end
    return best


def keep_budget():
    """Bytes the distributions of the set the weight is chosen on may keep: half of model.EVAL_BYTES,
    or a quarter of the memory the machine has available now if that is more."""
    return max(model.EVAL_BYTES // 2, (runtime.available_memory() or 0) // 4)


class _Distributions:
    """Both models' whole log distributions over one set, a chunk of rows at a time.

    The log-linear mixture needs them for its normaliser, once per lambda the search
    tries. With keep=True (the set the weight is chosen on) and when they fit in keep_budget(),
    they are computed once and kept; otherwise they are recomputed chunk by chunk each time
    (on a vocabulary of thousands, that recomputation is most of the work). A chunk, with what
    a pass over it computes, fits in half of model.EVAL_BYTES.
    """

    def __init__(self, params, kn, X, T, keep=True):
        V = params["b2"].shape[0]
        self.params, self.kn, self.X, self.T = params, kn, X, T
        # A chunk's two distributions and at most seven (rows, V) temporaries of loglinear_derivatives
        # (delta, s, logsumexp's two, einsum's), 8 bytes each: nine arrays in half of the budget.
        self.rows = max(1, model.EVAL_BYTES // (2 * 9 * 8 * V))
        fits = len(X) * V * 16 <= keep_budget()
        self.kept = list(self._compute()) if keep and fits else None

    def _compute(self):
        for start in range(0, len(self.X), self.rows):  # over chunks of data, not the math
            Xc = self.X[start:start + self.rows]
            yield start, mlp_log_probs(self.params, Xc[:, -self.T:]), np.log(self.kn.probs(Xc))

    def __iter__(self):
        return iter(self.kept) if self.kept is not None else self._compute()


def loglinear_nll_chunked(lam, dists, Y):
    """loglinear_nll over a set whose distributions come in chunks."""
    total = 0.0
    for start, a, b in dists:
        total += loglinear_nll(lam, a, b, Y[start:start + len(a)]) * len(a)
    return total / len(Y)


def loglinear_derivatives_chunked(lam, dists, Y):
    """loglinear_derivatives over a set whose distributions come in chunks, as means over its rows."""
    sums = np.zeros(3)
    for start, a, b in dists:
        sums += loglinear_derivatives(lam, a, b, Y[start:start + len(a)])
    return tuple(sums / len(Y))


def mlp_target_log_probs(params, X, Y):
    """log p_mlp(Y | X) (N,), a chunk of rows at a time."""
    model.check_examples(params, X, Y)
    rows = model.chunk_rows(params, len(Y))
    return np.concatenate([mlp_log_probs(params, X[s:s + rows])[np.arange(len(Y[s:s + rows])), Y[s:s + rows]]
                           for s in range(0, len(Y), rows)])


def evaluate(params, sets, train=None, n=None, say=None):
    """Losses of the MLP on each set, and with n: of the Kneser-Ney n-gram fitted on `train` and both mixtures.
    say: a function given a line as each part begins (the mixtures of a long list take minutes).

    sets: {name: (X, Y)} with contexts at least max(T, n - 1) wide (each model reads
    the last columns it needs); with n, sets must hold "dev", where the weights are chosen.
    Memory stays bounded whatever the vocabulary: only the targets' probabilities are kept
    for every example; dev's whole distributions are kept only while they fit keep_budget().
    Returns {"mlp": {name_loss}, "ngram", "mix", "mix_loglinear": ..., "lambda", "lambda_loglinear"}.
    """
    T = params["W1"].shape[0] // params["C"].shape[1]
    sets = {name: (np.asarray(X), np.asarray(Y)) for name, (X, Y) in sets.items()}
    for name, (X, Y) in sets.items():
        if np.ndim(X) != 2 or np.shape(X)[1] < T:
            raise ValueError(f"{name}: X must be contexts (N, at least {T}) for this network, got {np.shape(X)}")
        try:
            model.check_examples(params, X[:, -T:], Y)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if n is not None and (train is None or "dev" not in sets):
        raise ValueError("mixing with an n-gram needs train=(X, Y) to fit it on and a 'dev' set to choose the "
                         "weights on")
    if say is not None and not callable(say):
        raise TypeError(f"say must be a function that takes a line, or None, got {type(say).__name__}")
    say = say or (lambda line: None)
    say(f"the MLP on {', '.join(sets)}")
    with np.errstate(over="ignore", under="ignore"):  # a float32 model's exp can underflow; logsumexp copes
        logp_y = {name: mlp_target_log_probs(params, X[:, -T:], Y) for name, (X, Y) in sets.items()}
    result = {"mlp": {f"{name}_loss": float(-np.mean(logp_y[name])) for name in sets}}
    if n is None:
        return result
    say(f"the Kneser-Ney {n}-gram, fitted on {len(train[1]):,} training examples, and the linear mixture")
    kn = KneserNey(n).fit(*train, params["C"].shape[0])
    p_y = {name: np.exp(logp_y[name]) for name in sets}
    q_y = {name: kn.target_probs(X, Y) for name, (X, Y) in sets.items()}
    lam = choose_lambda(lambda l: linear_nll(l, p_y["dev"], q_y["dev"]))
    with np.errstate(over="ignore", under="ignore"):
        # dev is read once per lambda tried, so it is kept when it fits; the others are read once
        dists = {name: _Distributions(params, kn, X, T, keep=name == "dev") for name, (X, _) in sets.items()}
        Ydev = sets["dev"][1]
        say("the log-linear mixture's weight, on dev")
        lam_ll = newton_lambda(lambda l: loglinear_derivatives_chunked(l, dists["dev"], Ydev))
        result["mix_loglinear"] = {}
        for name, (_, Y) in sets.items():
            say(f"the log-linear mixture on {name}")
            result["mix_loglinear"][f"{name}_loss"] = loglinear_nll_chunked(lam_ll, dists[name], Y)
    result["ngram"] = {f"{name}_loss": float(-np.mean(np.log(q_y[name]))) for name in sets}
    result["mix"] = {f"{name}_loss": linear_nll(lam, p_y[name], q_y[name]) for name in sets}
    result["lambda"], result["lambda_loglinear"] = lam, lam_ll
    return result
