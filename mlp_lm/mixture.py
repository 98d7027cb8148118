"""Mixing two next-symbol models, as the paper mixes its network with an n-gram.

Both mixtures have one weight lambda in [0, 1], chosen to minimise the dev NLL
(never the test NLL), then reported on test:

    linear (the paper's):  p(w | h) = lambda p_mlp(w | h) + (1 - lambda) p_ngram(w | h)
    log-linear:            p(w | h) = p_mlp(w | h)^lambda p_ngram(w | h)^(1 - lambda) / Z(h),
                           Z(h) = sum_v p_mlp(v | h)^lambda p_ngram(v | h)^(1 - lambda)

The linear mixture needs only each model's probability of the target; the
log-linear one needs whole distributions for its normaliser Z. Both NLLs are
convex in lambda (a log of a linear function is concave; a log-sum-exp of a
linear function is convex), so a bounded scalar search finds the minimum.
"""
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from . import model
from .counting import KneserNey

TINY = 1e-300  # the floor under a probability before its log; a mixture never needs it at lambda < 1


def mlp_log_probs(params, X, chunk_size=None):
    """log p_mlp(. | X) (N, V) float64, computed a chunk of rows at a time (model.rows_per_chunk)."""
    chunk_size = chunk_size or model.rows_per_chunk(params)
    out = []
    for start in range(0, len(X), chunk_size):  # over chunks of data, not the math
        z = model.logits(params, X[start:start + chunk_size]).astype(np.float64)  # (n, V)
        out.append(z - logsumexp(z, axis=1, keepdims=True))
    return np.concatenate(out) if out else np.empty((0, params["b2"].shape[0]))


def linear_nll(lam, p_a, p_b):
    """Mean NLL of lam * p_a + (1 - lam) * p_b, given each model's probability of the targets (N,)."""
    return float(-np.mean(np.log(np.maximum(lam * p_a + (1 - lam) * p_b, TINY))))


def loglinear_nll(lam, logp_a, logp_b, Y):
    """Mean NLL of the renormalised p_a^lam p_b^(1 - lam), given whole log distributions (N, V)."""
    s = lam * logp_a + (1 - lam) * logp_b  # (N, V), unnormalised log probabilities
    return float(np.mean(logsumexp(s, axis=1) - s[np.arange(len(Y)), Y]))


def choose_lambda(nll_of_lambda):
    """The lambda in [0, 1] with the lowest NLL, by bounded scalar search (the NLL is convex)."""
    res = minimize_scalar(nll_of_lambda, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-5})
    best = float(res.x)
    for end in (0.0, 1.0):  # the bounded search never evaluates exactly at an end
        if nll_of_lambda(end) < nll_of_lambda(best):
            best = end
    return best


class _Distributions:
    """Both models' whole log distributions over one set, a chunk of rows at a time.

    The log-linear mixture needs them for its normaliser, once per lambda the search
    tries. When they fit in model.EVAL_BYTES they are computed once and kept; for a large
    vocabulary they are recomputed chunk by chunk each time, so memory stays bounded.
    """

    def __init__(self, params, kn, X, T):
        V = params["b2"].shape[0]
        self.params, self.kn, self.X, self.T = params, kn, X, T
        self.rows = max(1, model.EVAL_BYTES // (8 * 4 * V))  # two distributions and two temporaries a row
        self.kept = list(self._compute()) if len(X) * V * 16 <= model.EVAL_BYTES else None

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


def mlp_target_log_probs(params, X, Y):
    """log p_mlp(Y | X) (N,), a chunk of rows at a time."""
    rows = model.rows_per_chunk(params)
    return np.concatenate([mlp_log_probs(params, X[s:s + rows])[np.arange(len(Y[s:s + rows])), Y[s:s + rows]]
                           for s in range(0, len(Y), rows)])


def evaluate(params, sets, train=None, n=None):
    """Losses of the MLP on each set, and with n: of the Kneser-Ney n-gram fitted on `train` and both mixtures.

    sets: {name: (X, Y)} with contexts at least max(T, n - 1) wide (each model reads
    the last columns it needs); with n, sets must hold "dev", where the weights are chosen.
    Memory stays bounded whatever the vocabulary: only the targets' probabilities are kept
    for every example; whole distributions are kept only while they fit model.EVAL_BYTES.
    Returns {"mlp": {name_loss}, "ngram", "mix", "mix_loglinear": ..., "lambda", "lambda_loglinear"}.
    """
    T = params["W1"].shape[0] // params["C"].shape[1]
    with np.errstate(over="ignore", under="ignore"):  # a float32 model's exp can underflow; logsumexp copes
        logp_y = {name: mlp_target_log_probs(params, X[:, -T:], Y) for name, (X, Y) in sets.items()}
    result = {"mlp": {f"{name}_loss": float(-np.mean(logp_y[name])) for name in sets}}
    if n is None:
        return result
    kn = KneserNey(n).fit(*train, params["C"].shape[0])
    p_y = {name: np.exp(logp_y[name]) for name in sets}
    q_y = {name: kn.target_probs(X, Y) for name, (X, Y) in sets.items()}
    lam = choose_lambda(lambda l: linear_nll(l, p_y["dev"], q_y["dev"]))
    with np.errstate(over="ignore", under="ignore"):
        dists = {name: _Distributions(params, kn, X, T) for name, (X, _) in sets.items()}
        Ydev = sets["dev"][1]
        lam_ll = choose_lambda(lambda l: loglinear_nll_chunked(l, dists["dev"], Ydev))
        result["mix_loglinear"] = {f"{name}_loss": loglinear_nll_chunked(lam_ll, dists[name], Y)
                                   for name, (_, Y) in sets.items()}
    result["ngram"] = {f"{name}_loss": float(-np.mean(np.log(q_y[name]))) for name in sets}
    result["mix"] = {f"{name}_loss": linear_nll(lam, p_y[name], q_y[name]) for name in sets}
    result["lambda"], result["lambda_loglinear"] = lam, lam_ll
    return result
