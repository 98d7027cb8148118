"""What train says about a run beyond its numbers: why a run that ended no better than a uniform guess (or
than counting symbols) did, and a run that learned its training items by heart, with what to try instead.
What it says of the list itself, before any step, is data_advice.py's."""
import math

import numpy as np

from . import optim
from .counting import AddK
from .data import unseen_symbols
from .data_advice import long_items


def bounced(losses, window=100):
    """Whether the minibatch losses rose on their way down: the mean of a later `window` of steps
    above the first window's, in a run whose last window is below half its first. A start far above
    ln V (--init lecture: about 28) can fall a long way and still end above ln V with a learning rate
    too large, the loss bouncing up on the way; a rate too small moves it little, up or down."""
    means = np.asarray(losses[:len(losses) // window * window], dtype=np.float64).reshape(-1, window).mean(axis=1)
    return len(means) > 1 and means[-1] < 0.5 * means[0] and float(means[1:].max()) > 1.05 * float(means[0])


def fell_far(losses, V, window=100):
    """(first, last): the means of the first and last `window` minibatch losses (a quarter of the run's
    steps, for a run shorter than 4 windows), when the first is far above ln V (twice it or more, as
    --init lecture's start) and the last came down at least a quarter of the way from there to ln V;
    else None."""
    window = max(1, min(window, len(losses) // 4))
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    far = len(losses) >= 2 and first >= 2 * math.log(V)
    return (first, last) if far and last <= first - 0.25 * (first - math.log(V)) else None


OVERFIT_RISE = 1.02  # a final dev loss this many times its best evaluation's or more: overfitting, not noise
OVERFIT_GAP = 1.5  # or this many times the training loss, risen or not (healthy runs here: at most 1.14)
EMA_HELD = 0.5  # a weight average whose share of the initial weights is over this is mostly where the run started
# (at 0.1, a reviewer's 14% after 2,000 steps was named as the cause of a run as stuck without --ema)
RATE_HELD = 0.01  # an inverse schedule whose rate averages less than this share of --lr holds the model still


def suggested_weight_decay(n_items):
    """A weight decay to start from for a list of n_items, under SGD: about 2 / n_items, to one
    significant figure. On the first 250, 2,000 and 8,000 names it was the best of 1, 2 and 4 / items
    or next to it (docs/training.md#a-short-list): a penalty whose weight falls as the data grows, as a
    prior's does against the likelihood of more examples."""
    return float(f"{2 / n_items:.0e}")


def by_heart(result, devs, n_items, cfg, retry, V=None):
    """What to try after a run that learned its training items by heart: a weight decay for its optimiser
    (one larger than it has, if it has one), more data, or fewer steps (which --keep-best has tried
    already), and where dev was best; with V, when even that was no better than a uniform guess, that
    the evaluations came too far apart to find the step."""
    decay, wanted = cfg.weight_decay, suggested_weight_decay(n_items)
    if cfg.optimizer == "sgd" and decay < wanted:  # 2 / items, a start: on 250 names 1 / items did better
        what = f"a weight decay, --weight-decay {wanted:g} for a list of {n_items:,} items" + (
            f" (compare it on dev with this run's {decay:g}, which can be better)" if decay else "")
    elif decay:
        what = f"a larger --weight-decay than {decay:g}"
    else:  # AdamW's is decoupled: lr * lambda a step, apart from the gradient (optim.AdamW), so 2 / items is too little
        what = "a weight decay, --weight-decay 0.1 or more (AdamW's is lr x lambda a step, far more than SGD's)"
    step = min(devs, key=devs.get) if devs else None
    where = (f" (dev was best at step {step:,}, {devs[step]:.4f})"
             if step is not None and devs[step] < result["dev_loss"] else "")
    fewer = ", or fewer --steps"
    if where and V is not None and devs[step] >= math.log(V):  # a new user's 50 items: best at 10,000, 4.85 > 3.18
        where = f" (every dev evaluation was no better than a uniform guess, the best {devs[step]:.4f} at step {step:,}"
        # evaluated every step, no step was any good: fewer steps would not help
        where, fewer = (where + ": a smaller --eval-every finds where dev was best)", fewer) if cfg.eval_every > 1 \
            else (where + ")", "")
    return f"{retry} {what} or more data{where}" if cfg.keep_best else \
        f"{retry} {what}{', more data' + fewer if fewer else ' or more data'}{where}"


def retry_with(resumed):
    """How advice offers its flags: "try" them, or for a resumed run "start a new run with" them (--resume
    takes none of these flags)."""
    return "start a new run with" if resumed else "try"


def overfit_warning(result, devs, n_items, cfg, resumed=False):
    """The warning for a run that learned its training items by heart: its dev loss ended well above its
    best evaluation while its training loss stayed below that, or far above its training loss. None for
    any other run. result: its train/dev/test losses; devs: {step: dev loss} of its evaluations."""
    if not result:
        return None
    train, final = result["train_loss"], result["dev_loss"]
    step = min(devs, key=devs.get) if devs else None
    rose = len(devs) >= 2 and final >= OVERFIT_RISE * devs[step] and train < devs[step]
    if not (rose or final >= OVERFIT_GAP * train):
        return None
    retry = retry_with(resumed)
    told = (f"the dev loss rose from {devs[step]:.4f} at step {step:,} to {final:.4f}, while the training loss fell "
            f"to {train:.4f}" if rose else f"the kept model's training loss, {train:.4f}, is far below its dev loss, "
            f"{final:.4f}" if cfg.keep_best else f"the training loss, {train:.4f}, ended far below the dev loss, {final:.4f}")
    keep = ("; --keep-best saves the model of the best dev evaluation instead of the last"
            if rose and not cfg.keep_best else "")
    return (f"warning: {told}: the model learned its training items by heart; "
            + by_heart(result, {} if rose else devs, n_items, cfg, retry) + keep)


def kept_best_line(best, devs, done):
    """What a --keep-best run saved: the model of step `best`, its best dev evaluation (None before the
    first), and how that compares with the last step, `done` (one stopped between evaluations has none)."""
    if best is None:
        return f"kept the model of step {done:,}, where the run stopped: it had no dev evaluation yet"
    if best == done:
        return f"kept the model of step {best:,}, the last, its best dev evaluation ({devs[best]:.4f})"
    last = f"; {devs[done]:.4f} at step {done:,}, the last" if done in devs else f"; the run stopped at step {done:,}"
    return f"kept the model of step {best:,}, the best dev evaluation ({devs[best]:.4f}{last})"


def futile_warning(result, losses, V, n_items, cfg, devs=None, resumed=False, note=""):
    """The warning for a run whose dev loss is no better than ln V, a uniform guess: why (learned
    its training items by heart, a loss that went up, that rose on its way down, that came a long way
    down but not far enough, or no progress) and what to try. result: its train/dev/test losses;
    losses: its minibatch losses, step by step; n_items: the items of its list; devs: {step: dev loss};
    note: what the by-heart reason adds (dev_only_note)."""
    retry = retry_with(resumed)
    advice = ("the model learned its training items by heart and nothing that carries over to new ones; "
              + by_heart(result, devs or {}, n_items, cfg, retry, V) + note if result["train_loss"] < 0.9 * math.log(V)
              else why_stuck(result, losses, V, retry, "training did not get anywhere", cfg))
    return (f"warning: the dev loss is no better than ln {V} = {math.log(V):.2f}, the loss of a uniform "
            f"guess: {advice}")


def why_stuck(result, losses, V, retry, nowhere, cfg, unless=""):
    """Why a run (of config cfg) that did not learn its training items by heart ended where it did, and what to
    try: a weight average (--ema) that still holds much of the initial weights, an inverse schedule that held the
    learning rate near 0, a loss that went up, that rose on its way down, that came a long way down but not far
    enough, or `nowhere` (no progress to speak of: more steps or a larger rate, `unless` ...)."""
    fell = fell_far(losses, V)
    ema = cfg.ema
    held = ema ** len(losses) if ema else 0.0  # the initial weights' share of the average the run saved and evaluated
    # (the step and cosine schedules never average below half of --lr, a warm-up being shorter than the run)
    share = optim.inverse_mean(cfg.decay_rate, len(losses)) if cfg.schedule == "inverse" and len(losses) else 1.0
    # the last steps' against the first's; or the dev loss, for a run too short to show it (a run of one
    # step records only the loss before its update)
    return (f"the weight average it saved (--ema {ema!r}, over about {1 / (1 - ema):,.0f} steps) still holds "
            f"{held:.0%} of the initial weights after {len(losses):,} steps; {retry} a smaller --ema or more --steps"
            if held > EMA_HELD
            # a hostile tester's --schedule inverse --decay-rate 1e9, told to try a larger --lr
            else (f"its schedule held the learning rate to {share:.2g} of --lr {cfg.lr:g} on average over its "
                  f"{len(losses):,} steps (--schedule inverse --decay-rate {cfg.decay_rate:g}); {retry} a smaller "
                  f"--decay-rate")
            if share < RATE_HELD
            else f"the training loss went up, not down; {retry} a smaller --lr"
            if max(float(np.mean(losses[-100:])), result["dev_loss"]) > 1.05 * losses[0]
            else f"the training loss rose on its way down; {retry} a smaller --lr" if bounced(losses)
            else (f"the training loss came down from {fell[0]:.2f} to {fell[1]:.2f}, but a start that far above "
                  f"a uniform guess's needs more steps to get below it; {retry} more --steps") if fell
            else f"{nowhere}; {retry} a larger --lr or more --steps{unless}")


def little_learned_warning(result, losses, splits, cfg, resumed=False):
    """The warning for a run below a uniform guess on dev but no better than counting its symbols: an
    add-one unigram, fitted on the training split, which reads no context at all (a new user's run at
    --lr 0.001 ended at dev 3.57, uniform 3.74, unigram about 3.3, with nothing said). None for any other run."""
    V = len(splits.vocab)
    unigram = AddK(1).fit(*splits.train, V).nll(*splits.dev)
    if not result or result["dev_loss"] < unigram:
        return None
    retry = retry_with(resumed)
    held = [f"--{flag} {value:g}" for flag, value in (("weight-decay", cfg.weight_decay),
                                                       ("label-smoothing", cfg.label_smoothing)) if value]
    if held:  # a review's --weight-decay 0.2 on names: dev 2.8212 against 2.8210, told to train longer
        return (f"warning: the dev loss, {result['dev_loss']:.4f}, is no better than counting symbols ({unigram:.4f}, "
                f"an add-one unigram's, which reads no context): {' and '.join(held)} may hold the model there; "
                f"{retry} less of it")
    # level with it: a list of random strings, say, has nothing more to learn (a review: 20,000 steps, 1.9904
    # against 1.9881, told to train longer)
    near = (", unless the list's symbols do not depend on the ones before them (random strings), where counting "
            "them is the best any model can do") if result["dev_loss"] < 1.01 * unigram else ""
    return (f"warning: the dev loss, {result['dev_loss']:.4f}, is no better than counting symbols ({unigram:.4f}, "
            f"an add-one unigram's, which reads no context): "
            + why_stuck(result, losses, V, retry, "the model has hardly begun to learn", cfg, near))


def quality_warning(result, devs, losses, splits, n_items, cfg, resumed=False):
    """The warning for a run better than a uniform guess on dev that learned its training items by heart
    (overfit_warning) or hardly anything (little_learned_warning), or None."""
    overfit = overfit_warning(result, devs, n_items, cfg, resumed)
    return overfit + dev_only_note(splits) if overfit else little_learned_warning(result, losses, splits, cfg, resumed)


def dev_only_note(splits):
    """What a warning that the model learned its training items by heart adds when dev holds symbols no training
    item does (data.unseen_symbols_warning), or many of its examples come from long items (long_items): either
    opens a gap between the losses whatever the model learned."""
    unseen = ("; part of the gap may be the symbols dev holds and training does not, warned of above"
              if unseen_symbols(splits, ("dev",)) else "")
    long, share = long_items(splits)[0].get("dev", ((), 0.0))
    if not len(long):
        return unseen
    return unseen + (f"; but {100 * share:.1f}% of dev's examples come from the long "
                     f"{'item' if len(long) == 1 else 'items'} warned of above, which may be all of the gap: take "
                     f"{'it' if len(long) == 1 else 'them'} out and train again before trying these")
