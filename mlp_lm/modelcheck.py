"""The whole model's gradients against finite differences: check_model, and what it checks with.

check_model compares model.loss_and_grads (or your own gradient code) with scipy's finite differences
(finitediff.numerical_grad) for every parameter and every intermediate of the backward pass, the
numerical side from the forward pass written once more here, independently of layers.py.
random_params draws parameters fit for checking. python -m mlp_lm.gradcheck (gradcheck.py) is the
command over them, and docs/gradcheck.md says how to use them on your own code.
"""
import inspect
import numbers
from collections.abc import Mapping

import numpy as np

from . import model
from .checks import is_whole
from .comparison import _real
from .finitediff import ZERO_NOISE, Comparison, compare, numerical_grad, sampled_coords
from .params import PARAM_NAMES, check_params, checked_sizes

MAX_LOSS = 1e4  # the largest loss checked: random_params scaled up, correct output-layer gradients failed from 4e4

STAGES = ("emb", "embcat", "hpreact", "h", "logits")  # the intermediates checked, in forward order
FOLDED_STAGES = ("hpreact", "h", "logits")  # fold never forms emb and embcat


def _forward_with(params, X, masks=None, override=None):
    """The forward pass written once more, in plain numpy, with any stage's value replaced.

    Deliberately independent of layers.py, so the check compares two
    implementations. embcat and h are taken after their dropout masks; fold's mask "C" (T, V, E)
    acts on each symbol's embedding at each position: emb[b, t] = C[X[b, t]] * M[t, X[b, t]].
    """
    masks, override = masks or {}, override or {}
    B, T = X.shape
    emb = params["C"][X]
    if masks.get("C") is not None:
        emb = emb * masks["C"][np.arange(T), X]
    v = {"emb": override.get("emb", emb)}
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
    return _mean_nll(v["logits"], Y, smoothing)


def _mean_nll(logits, Y, smoothing=0.0):
    """The mean cross-entropy written once more, like _forward_with, not layers.py's: log-softmax
    by the log-sum-exp, against the target (1 - eps) * one_hot(Y) + eps / V of label smoothing."""
    B, V = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (B, V)
    target = np.full((B, V), smoothing / V)
    target[np.arange(B), Y] += 1 - smoothing
    return float(-(target * log_probs).sum() / B)


def random_params(vocab_size, block_size, n_embd, n_hidden, seed=0, direct=False):
    """Float64 parameters for checking: every entry random and non-zero, tanh not saturated.

    Zeros hide wrong backward passes (a missing term times zero is still zero), and
    saturated tanh units make dhpreact tiny; this init avoids both. (So Wd, which
    training starts at zero, is random here.)
    """
    V, T, E, H = checked_sizes(vocab_size, block_size, n_embd, n_hidden, direct)
    rng = np.random.default_rng(seed)
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


def check_model(params, X, Y, max_coords=None, seed=0, *, masks=None, smoothing=0.0, fold=False,
                loss_and_grads=None, tolerances=None):
    """Compare loss_and_grads with finite differences for every parameter and intermediate.

    Returns a list of Comparison rows, parameters first (with Wd last when
    present), then the intermediates in backward order. With max_coords, each
    tensor is checked on that many randomly sampled entries, always including its
    largest analytic entry, which sets the scale (the rest is not compared). masks (fixed dropout masks) and smoothing
    are passed to loss_and_grads and to the independent forward alike; fold to loss_and_grads only (the
    independent forward is the plain one), with FOLDED_STAGES as the intermediates.

    loss_and_grads is the gradient code checked: model.loss_and_grads by default, or your own, called
    as fn(params, X, Y, return_intermediates=True), with masks=, smoothing= and fold= only when they
    are set, and returning (loss, grads, intermediates) keyed as ours are, or (loss, grads) (or
    intermediates None) to check the parameters alone. The numerical side is always this model as
    _forward_with writes it. tolerances goes to numerical_grad (an absolute one where gradients are
    tiny against the loss).
    """
    if max_coords is not None and not is_whole(max_coords):  # 0 checks nothing: no check at all
        raise ValueError(f"max_coords must be None or a whole number of entries, at least 1, got {max_coords!r}")
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of arrays by name ({', '.join(PARAM_NAMES)}), got "
                         f"{type(params).__name__}")
    params = {k: _real(v, f"params[{k!r}]") for k, v in params.items()}  # (a nested dict, a ragged list: named)
    check_params(params)  # this model's parameters only: the numerical side is its forward pass, which reads no other
    # the independent forward indexes with them: a list (or a tensor) of indices is read as an array, as
    # model.loss_and_grads reads it; your loss_and_grads gets X and Y as you gave them
    Xa, Ya = np.asarray(X), np.asarray(Y)
    model.check_examples(params, Xa, Ya)
    if not isinstance(smoothing, numbers.Real):
        raise ValueError(f"smoothing must be a number, got {type(smoothing).__name__}")
    smoothing = float(smoothing)  # both sides in float64: a float16 eps would round 1 - eps in the checker's loss
    if masks is not None and not isinstance(masks, Mapping):
        raise ValueError(f"masks must be a dict of dropout masks by name ('embcat' and 'h', or 'C' and 'h' folded), "
                         f"got {type(masks).__name__}")
    if masks is not None:  # masks of None are no masks: not passed on
        masks = dict(masks) if any(m is not None for m in masks.values()) else None
    settings = {"masks": masks} if masks is not None else {}  # each passed on only when it is set
    if smoothing:
        settings["smoothing"] = smoothing
    if fold:
        settings["fold"] = fold
    fn = loss_and_grads or model.loss_and_grads
    try:  # a function that cannot take the call would raise Python's bare TypeError from inside this one
        inspect.signature(fn, follow_wrapped=False).bind(params, X, Y, return_intermediates=True, **settings)
    except TypeError as e:
        raise ValueError(f"loss_and_grads is called as fn(params, X, Y, return_intermediates=True"
                         f"{''.join(f', {k}=...' for k in settings)}), and yours cannot take that ({e}): give it those "
                         f"keywords (it may return (loss, grads) alone, to check the parameters only)") from None
    except ValueError:  # no signature to read (a builtin, say): the call itself will tell
        pass
    out = fn(params, X, Y, return_intermediates=True, **settings)
    their_loss, grads, inter = _gradients_returned(out)
    values = _forward_with(params, Xa, masks)
    loss = _mean_nll(values["logits"], Ya, smoothing)
    if not np.isfinite(loss):
        raise ValueError(f"this model's loss at these parameters is {loss}: use finite parameters of moderate size")
    if loss > MAX_LOSS:  # its rounding, over the small steps, swamps the output layer's derivatives: correct ones fail
        raise ValueError(f"this model's loss at these parameters is {loss:.3g} nats a symbol, too large for finite "
                         f"differences to check its gradients (past about {MAX_LOSS:.0e}, correct ones fail): use "
                         f"parameters of moderate size, as random_params draws them")
    if not abs(their_loss - loss) <= 1e-9 * max(1.0, abs(loss)):  # NaN too
        raise ValueError(f"loss_and_grads gave a loss of {their_loss!r} where this model's is {loss!r}: not the "
                         f"same forward pass (or not in float64), so its gradients cannot be this model's")
    rng = np.random.default_rng(seed)
    rows = []
    names = [k for k in PARAM_NAMES if k in params] + [k for k in params if k not in PARAM_NAMES]
    stages = list(reversed(FOLDED_STAGES if fold else STAGES)) if inter is not None else []
    targets = [(k, params[k], grads.get(k)) for k in names] + [(k, values[k], inter.get(k)) for k in stages]
    strays = [k for k in (*grads, *(inter or ())) if k not in names and k not in stages]  # misnamed ones, by name
    missing = "loss_and_grads returned no gradient for it" + (
        f" (it returned {', '.join(map(repr, strays))}, which are no tensors of this model: gradients are keyed by "
        f"the forward value's name, without the d)" if strays else "")
    for name, value, analytic in targets:
        if analytic is None:
            rows.append(Comparison.missing("d" + name, value.shape, missing))
            continue
        coords = sampled_coords(value.shape, analytic, max_coords, rng)
        num, status = numerical_grad(lambda v, name=name: _loss_from(name, v, params, Xa, Ya, masks, smoothing),
                                     value, coords, tolerances=tolerances, return_status=True)
        rows.append(compare("d" + name, analytic, num, coords, shape=value.shape, status=status,
                            zero_noise=ZERO_NOISE * max(1.0, abs(loss))))  # rounding grows with the loss
    return rows


def _gradients_returned(out):
    """(loss, grads, intermediates or None) from what a loss_and_grads returned, or ValueError naming what is wrong."""
    if not (isinstance(out, (tuple, list)) and len(out) in (2, 3)):
        raise ValueError(f"loss_and_grads must return (loss, grads, intermediates) or (loss, grads), got "
                         f"{type(out).__name__}" + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""))
    grads, inter = out[1], (out[2] if len(out) == 3 else None)
    for what, d in (("grads", grads), ("intermediates", inter)):
        if not (isinstance(d, Mapping) or (what == "intermediates" and d is None)):
            raise ValueError(f"loss_and_grads returned {what} as {type(d).__name__}, not a dict of arrays by name")
    loss = out[0]  # a real number: float() would also read '1.5', b'1.5' and a bytearray, and drop 1.5+2j's 2j
    if not (isinstance(loss, numbers.Real) or (isinstance(loss, np.ndarray) and loss.ndim == 0
                                               and loss.dtype.kind in "fiu")):
        raise ValueError(f"loss_and_grads returned a loss of {type(loss).__name__}, not a real number")
    return float(loss), grads, inter
