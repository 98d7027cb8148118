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

TINY = 1e-300  # the floor under a probability before its log; a mixture never needs it at lambda < 1


def mlp_log_probs(params, X, chunk_size=8192):
    """log p_mlp(. | X) (N, V) float64, computed a chunk of rows at a time."""
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
