"""Check hand-derived gradients against scipy's finite differences.

    python -m mlp_lm.gradcheck            # the model, every parameter and intermediate
    python -m mlp_lm.gradcheck --direct --dropout 0.3 --label-smoothing 0.1   # and the extras
    python -m mlp_lm.gradcheck --fold --direct --dropout 0.3    # the folded first layer (folded.py)

prints one row per tensor, as in the manual-backprop lecture: whether the
analytic gradient equals the numerical one exactly, the largest absolute
difference, and that difference divided by the largest analytic gradient
compared, which must be at most 1e-9 (COMMAND_TOLERANCE). Then it checks that the
branches layers.py takes at sizes past these (a vocabulary past 64 symbols, a batch
past 2**20 one-hot entries) give the same gradients.

The numerical derivatives and the comparison are finitediff.py's, which is also
what to use on your own gradient code. See docs/gradcheck.md.
"""
import contextlib
import numbers
import sys
from collections.abc import Mapping

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.gradcheck", file=sys.stderr)
    sys.exit(2)

from . import layers, model, onehot
from .checks import is_whole
from .finitediff import PROVES_NOTHING, ZERO_NOISE, Comparison, compare, numerical_grad
from .model import embedding_mask_shape
from .params import PARAM_NAMES, check_params, checked_sizes, param_count

MAX_COORDS = 20_000  # what the command checks entry by entry in well under a minute
MAX_LOSS = 1e4  # the largest loss checked: random_params scaled up, correct output-layer gradients failed from 4e4
# The command's judge of this model's own float64 code, tighter than finitediff's TOLERANCE for any code: correct
# rows came out at 1e-13 to 5e-11 over 136 seeds and flag sets, a float32 cast inside a backward pass at 2e-8 and up.
COMMAND_TOLERANCE = 1e-9
# layers.py's branches for sizes past the command's, each with the switch that forces it at any size: (what takes
# it, {(module, name): value}). The command checks their gradients against the ones the small sizes' branches gave.
OTHER_PATHS = [("a vocabulary past 64 symbols", {(onehot, "IDENTITY_MAX_V"): 0}),
               ("dC past 2**20 one-hot entries (np.add.at)", {(layers, "ONEHOT_MAX"): 0})]


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
    params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    check_params(params)  # this model's parameters only: the numerical side is its forward pass, which reads no other
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
    out = (loss_and_grads or model.loss_and_grads)(params, X, Y, return_intermediates=True, **settings)
    their_loss, grads, inter = _gradients_returned(out)
    values = _forward_with(params, X, masks)
    loss = _mean_nll(values["logits"], Y, smoothing)
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
            rows.append(Comparison("d" + name, value.shape, False, np.inf, 0.0, np.inf, (), 0.0, 0.0, missing))
            continue
        coords = np.arange(value.size)
        if max_coords is not None and value.size > max_coords:
            coords = rng.choice(value.size, size=max_coords, replace=False)
            largest = int(np.argmax(np.abs(analytic))) if np.shape(analytic) == value.shape else None
            if largest is not None and largest not in coords:
                coords[0] = largest  # the entry that sets compare's scale is always one of those checked
        num, status = numerical_grad(lambda v, name=name: _loss_from(name, v, params, X, Y, masks, smoothing),
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


def main(argv=None):
    from .cli import ArgumentParser, UsageError
    from .flags import fraction, non_negative_int, positive_int

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
                    help="a fixed dropout mask with this rate on embcat (with --fold: on each position's C) "
                         "and h (default 0)")
    ap.add_argument("--fold", action="store_true",
                    help="the first layer folded into per-position tables, as train --fold trains it")
    ap.add_argument("--label-smoothing", type=fraction, default=0.0, metavar="EPS", help="label smoothing eps (default 0)")
    args = ap.parse_args(argv)
    B, T, E, H, V = args.batch_size, args.block_size, args.n_embd, args.n_hidden, args.vocab_size
    if V < 2:
        raise UsageError("--vocab-size must be at least 2: with one symbol every gradient is zero, so the "
                         "check would prove nothing")
    n_coords = param_count(V, T, E, H, args.direct) + 5 * B * max(V, H, T * E)
    if n_coords > MAX_COORDS:
        raise UsageError(f"these sizes have {n_coords:,} coordinates to check, each by many loss evaluations; "
                         f"keep it under {MAX_COORDS:,}; at larger sizes, check a sample of each tensor's entries with "
                         f"mlp_lm.gradcheck.check_model(params, X, Y, max_coords=N) (docs/gradcheck.md)")
    rng = np.random.default_rng(args.seed)
    params = random_params(args.vocab_size, T, E, H, seed=args.seed, direct=args.direct)
    X, Y = check_batch(B, T, V, rng)
    emb_mask = embedding_mask_shape(B, T, V, E, args.fold)
    masks = {emb_mask[0]: layers.dropout_mask(emb_mask[1], args.dropout, rng),
             "h": layers.dropout_mask((B, H), args.dropout, rng)}
    # (an absolute tolerance for scipy: the row of dC of the symbol no context holds has a derivative of exactly 0)
    rows = check_model(params, X, Y, masks=masks, smoothing=args.label_smoothing, fold=args.fold,
                       tolerances=dict(atol=1e-12))
    for r in rows:
        print(r.row(), f" {verdict(r)}")
    bad = [r for r in rows if not r.ok(COMMAND_TOLERANCE)]
    unchecked = sum(r.problem == PROVES_NOTHING for r in bad)
    print(f"{len(rows) - len(bad)} of {len(rows)} gradients within {COMMAND_TOLERANCE:.0e} of their scale"
          + (f"; {unchecked} unproven" if unchecked else ""))
    settings = dict(masks=masks, smoothing=args.label_smoothing, fold=args.fold)
    for what, switches in OTHER_PATHS:
        others = same_as_small_sizes(params, X, Y, switches, **settings)
        differ = [r for r in others if verdict(r) == "FAIL"]  # (zeros where the small sizes gave zeros are the same)
        for r in differ:
            print(r.row(), " FAIL")
        bad += differ
        print(f"the branch for {what}: {len(others) - len(differ)} of {len(others)} gradients the same, within "
              f"{COMMAND_TOLERANCE:.0e}")
    for r in bad:
        if r.problem and r.problem != PROVES_NOTHING:
            print(f"{r.name}: {r.problem}")
    for note in blind_spots(X, V):
        print(f"this batch cannot show {note}")
    unproven = [r.name for r in bad if r.problem == PROVES_NOTHING]
    if unproven and len(unproven) == len(bad):  # nothing found wrong, and not everything checked: no verdict
        hint = f", or a smaller --dropout (at {args.dropout:g}, {args.dropout:.0%} of the units are dropped)" \
            if args.dropout >= 0.5 else ""
        one = len(unproven) == 1
        raise UsageError(f"{', '.join(unproven)} {'is' if one else 'are'} all zeros, or rounding noise, at the inputs "
                         f"drawn, so the check proves nothing for {'it' if one else 'them'}: try another --seed{hint}")
    if unproven:
        print(f"({', '.join(unproven)}: {PROVES_NOTHING})")
    return 1 if bad else 0


def verdict(r):
    """A row's word: ok, FAIL, or unproven where the gradient is zeros or noise at the inputs drawn."""
    return "ok" if r.ok(COMMAND_TOLERANCE) else "unproven" if r.problem == PROVES_NOTHING else "FAIL"


@contextlib.contextmanager
def switched(switches):
    """layers.py's branch switches set to {(module, name): value} inside, and put back after."""
    saved = {(m, name): getattr(m, name) for m, name in switches}
    try:
        for (m, name), value in switches.items():
            setattr(m, name, value)
        yield
    finally:
        for (m, name), value in saved.items():
            setattr(m, name, value)


def same_as_small_sizes(params, X, Y, switches, **settings):
    """Comparison rows of every gradient model.loss_and_grads gives with `switches` (OTHER_PATHS) set, against
    the ones it gives without: the branches for larger sizes, held to those check_model held to finite
    differences (a difference below COMMAND_TOLERANCE of the scale is rounding, in another order of sums)."""
    _, grads, inter = model.loss_and_grads(params, X, Y, return_intermediates=True, **settings)
    with switched(switches):
        _, grads2, inter2 = model.loss_and_grads(params, X, Y, return_intermediates=True, **settings)
    return [compare("d" + k, got[k], want[k], shape=want[k].shape)
            for want, got in ((grads, grads2), (inter, inter2)) for k in want]


def check_batch(B, T, V, rng):
    """Contexts X (B, T) and targets Y (B,) for checking. The contexts leave out the last symbol (from
    V = 3 up), so its row of dC must come out exactly zero: code that writes into rows no example
    looked up is caught. Targets are drawn from all V."""
    X = rng.integers(0, V - 1 if V >= 3 else V, size=(B, T))
    return X, rng.integers(0, V, size=B)


def blind_spots(X, V):
    """The common slips that contexts X (B, T) over V symbols cannot show, each as a phrase: a
    check that passes on them passes these slips too."""
    X = np.asarray(X)
    notes = []
    if len(X) == 1:
        notes.append("a missing 1/B (a batch of one: its mean is its sum): use --batch-size 2 or more")
    if np.unique(X).size == X.size:
        notes.append("the dC[X] += demb slip (numpy adds a repeated index once, and no symbol repeats here): "
                     "use a larger --batch-size" + (" or --block-size" if V <= 3 else " or a smaller --vocab-size"))
    if np.unique(X).size == V:
        notes.append("a dC that gives a symbol no context holds a gradient (every symbol is in some "
                     "context): use a --vocab-size of 3 or more")
    return notes


if __name__ == "__main__":
    from .cli import run
    run(main, "python -m mlp_lm.gradcheck")
