"""Check hand-derived gradients against scipy's finite differences.

    python -m mlp_lm.gradcheck            # the model, every parameter and intermediate
    python -m mlp_lm.gradcheck --direct --dropout 0.3 --label-smoothing 0.1   # and the extras
    python -m mlp_lm.gradcheck --fold --direct --dropout 0.3    # the folded first layer (folded.py)

prints one row per tensor, as in the manual-backprop lecture: whether the
analytic gradient equals the numerical one exactly, the largest absolute
difference, and that difference divided by the largest analytic gradient
compared, which must be at most 1e-9 (COMMAND_TOLERANCE). Then it checks that the
branches layers.py takes at other sizes (a vocabulary past 64 symbols, a batch past
2**20 one-hot entries, or within them for sizes past them) give the same gradients.

The check is modelcheck.py's (check_model and random_params, importable from here too),
and the numerical derivatives and the comparison are finitediff.py's, which is also
what to use on your own gradient code. See docs/gradcheck.md.
"""
import contextlib
import sys

import numpy as np

if __name__ == "__main__" and not __package__:  # run as a file: the imports below need the package
    print(f"{sys.argv[0]}: error: this is a module of the mlp_lm package, not a script: run it as "
          "python -m mlp_lm.gradcheck", file=sys.stderr)
    sys.exit(2)

from . import layers, model, onehot
from .finitediff import PROVES_NOTHING, compare
from .model import embedding_mask_shape
from .modelcheck import FOLDED_STAGES, MAX_LOSS, STAGES, check_model, random_params  # the check, and its API here
from .params import param_count

__all__ = ["check_model", "random_params", "STAGES", "FOLDED_STAGES", "MAX_LOSS", "MAX_COORDS", "COMMAND_TOLERANCE",
           "other_branches", "main", "verdict", "same_as_own_branches", "check_batch", "blind_spots"]

MAX_COORDS = 20_000  # what the command checks entry by entry in well under a minute
# The command's judge of this model's own float64 code, tighter than finitediff's TOLERANCE for any code: correct
# rows came out at 1e-13 to 5e-11 over 136 seeds and flag sets, a float32 cast inside a backward pass at 2e-8 and up.
COMMAND_TOLERANCE = 1e-9


def other_branches(B, T, V, fold=False):
    """layers.py's branches that sizes B, T, V do not take, each with the switch that forces it at these sizes:
    [(what takes it, {(module, name): value})]. The command holds their gradients to the ones the sizes' own
    branches gave, which it held to finite differences. (The folded first layer has no embedding_backward.)"""
    small_v, small_dc = V <= onehot.IDENTITY_MAX_V, B * T * V <= layers.ONEHOT_MAX
    branches = [(f"a vocabulary {'past' if small_v else 'of at most'} {onehot.IDENTITY_MAX_V} symbols",
                 {(onehot, "IDENTITY_MAX_V"): 0 if small_v else V})]
    if not fold:
        branches.append((f"dC {'past' if small_dc else 'within'} 2**20 one-hot entries ("
                         f"{'np.add.at' if small_dc else 'a one-hot product'})",
                         {(layers, "ONEHOT_MAX"): 0 if small_dc else B * T * V}))
    return branches


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
    own = model.loss_and_grads(params, X, Y, return_intermediates=True, **settings)[1:]  # what check_model checked
    failed_above = any(verdict(r) == "FAIL" for r in bad)
    for what, switches in other_branches(B, T, V, args.fold):
        others = same_as_own_branches(params, X, Y, switches, own, **settings)
        differ = [r for r in others if verdict(r) == "FAIL"]  # (zeros where these sizes gave zeros are the same)
        print(f"the branch for {what}: {len(others) - len(differ)} of {len(others)} gradients the same, within "
              f"{COMMAND_TOLERANCE:.0e}" + (", as the ones above, which failed" if failed_above else "")
              + (":" if differ else ""))
        for r in differ:
            print("  " + r.row(), " FAIL")
        bad += differ
    for r in bad:
        if r.problem and r.problem != PROVES_NOTHING:
            print(f"{r.name}: {r.problem}")
    for note in blind_spots(X, V, flags=True):
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


def same_as_own_branches(params, X, Y, switches, own, **settings):
    """Comparison rows of every gradient model.loss_and_grads gives with `switches` (other_branches) set, against
    `own`, the (grads, intermediates) it gives without: the branches for other sizes, held to those check_model
    held to finite differences (a difference below COMMAND_TOLERANCE of the scale is rounding, in another order
    of sums)."""
    with switched(switches):
        _, grads, inter = model.loss_and_grads(params, X, Y, return_intermediates=True, **settings)
    return [compare("d" + k, got[k], want[k], shape=want[k].shape)
            for want, got in zip(own, (grads, inter)) for k in want]


def check_batch(B, T, V, rng):
    """Contexts X (B, T) and targets Y (B,) for checking. The contexts leave out the last symbol (from
    V = 3 up), so its row of dC must come out exactly zero: code that writes into rows no example
    looked up is caught. Targets are drawn from all V."""
    X = rng.integers(0, V - 1 if V >= 3 else V, size=(B, T))
    return X, rng.integers(0, V, size=B)


def blind_spots(X, V, flags=False):
    """The common slips that contexts X (B, T) over V symbols cannot show, each as a phrase: a
    check that passes on them passes these slips too. Each says what batch would show it; with
    flags=True (the command), which of the command's flags gives one."""
    X = np.asarray(X)
    notes = []
    if len(X) == 1:
        notes.append("a missing 1/B (a batch of one: its mean is its sum): " + (
            "use --batch-size 2 or more" if flags else "check on 2 examples or more"))
    if np.unique(X).size == X.size:
        notes.append("the dC[X] += demb slip (numpy adds a repeated index once, and no symbol repeats here): " + (
            "use a larger --batch-size" + (" or --block-size" if V <= 3 else " or a smaller --vocab-size") if flags else
            "check on contexts in which some symbol appears twice (more examples, or a longer context)"))
    if np.unique(X).size == V:
        notes.append("a dC that gives a symbol no context holds a gradient (every symbol is in some context): " + (
            "use a --vocab-size of 3 or more" if flags else
            "check on contexts that leave some symbol out (check_batch draws such contexts from V = 3 up)"))
    return notes


if __name__ == "__main__":
    from .cli import run
    run(main, "python -m mlp_lm.gradcheck")
