"""What train says about a run beyond its numbers: sizes the data cannot use, why a run that ended
no better than a uniform guess did, and a run that learned its training items by heart, with what
to try instead."""
import math
import unicodedata

import numpy as np


def size_warnings(cfg, splits):
    """Warnings for sizes the data cannot use: a batch longer than the training set, a context longer
    than the longest item (its first positions are then the boundary in every context)."""
    n_train, longest = len(splits.train[1]), max(len(item) for part in splits.items for item in part)
    if cfg.batch_size > n_train:
        yield (f"warning: the batch ({cfg.batch_size:,}) is longer than the training set ({n_train:,} examples), so "
               f"every step draws examples more than once; a --batch-size of {n_train:,} or less costs less")
    if cfg.block_size > longest:
        extra = cfg.block_size - longest
        yield (f"warning: the context ({cfg.block_size:,}) is longer than the longest item ({longest:,} "
               f"symbol{'s' if longest != 1 else ''}), so its first {extra:,} position{'s' if extra != 1 else ''} "
               f"hold{'s' if extra == 1 else ''} the boundary in every context and tell{'s' if extra == 1 else ''} "
               f"the model nothing; --block-size {longest:,} does the same for less")


def accents_warning(splits):
    """A warning when the list writes accents both ways: some letters as one character (é), others as a
    letter and a combining mark (e + U+0301). The same letter on screen is then two symbols, and the
    vocabulary grows; else None."""
    symbols = splits.vocab.itos
    marks = [c for c in symbols if unicodedata.combining(c)]
    composed = [c for c in symbols if len(unicodedata.normalize("NFD", c)) > 1]
    if not (marks and composed):
        return None
    both = [c for c in composed if set(unicodedata.normalize("NFD", c)) <= set(symbols)]  # é, and e with U+0301
    items = sum(any(unicodedata.combining(c) for c in item) for part in splits.items for item in part)
    return (f"warning: the list writes accents two ways, {(both or composed)[0]} as one character and {items:,} item"
            f"{'s' if items != 1 else ''} with combining marks ({', '.join(f'U+{ord(c):04X}' for c in marks[:3])}), "
            f"so one letter on screen can be two symbols; normalise it first (unicodedata.normalize(\"NFC\", "
            f"line)) if they should be one")


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


def suggested_weight_decay(n_items):
    """A weight decay to start from for a list of n_items: about 2 / n_items, to one significant figure.
    On lists of 250 to 8,000 names and of 200 to 9,000 other items it was within a factor of two of the
    best we measured (docs/training.md#a-short-list); a penalty whose weight falls as the data grows, as
    a prior's does against the likelihood of more examples."""
    return float(f"{2 / n_items:.0e}")


def overfit_warning(result, devs, n_items, resumed=False):
    """The warning for a run whose dev loss ended well above its best evaluation while its training
    loss stayed below both: it learned its training items by heart. None for any other run.
    result: its train/dev/test losses; devs: {step: dev loss} of its evaluations during training."""
    if len(devs) < 2 or not result:
        return None
    step = min(devs, key=devs.get)
    best, final = devs[step], result["dev_loss"]
    if final < OVERFIT_RISE * best or result["train_loss"] >= best:
        return None
    retry = "start a new run with" if resumed else "try"  # --resume takes none of these flags
    return (f"warning: the dev loss rose from {best:.4f} at step {step:,} to {final:.4f}, while the training loss "
            f"fell to {result['train_loss']:.4f}: the model learned its training items by heart; {retry} a weight "
            f"decay, --weight-decay {suggested_weight_decay(n_items):g} for a list of {n_items:,} items, or more data "
            f"(--steps {step} stops where dev was best; docs/training.md#a-short-list)")


def futile_warning(result, losses, V, n_items, resumed=False):
    """The warning for a run whose dev loss is no better than ln V, a uniform guess: why (learned
    its training items by heart, a loss that went up, that rose on its way down, that came a long way
    down but not far enough, or no progress) and what to try. result: its train/dev/test losses;
    losses: its minibatch losses, step by step; n_items: the items of its list."""
    retry = "start a new run with" if resumed else "try"  # --resume takes none of these flags
    fell = fell_far(losses, V)
    advice = ("the model learned its training items by heart and nothing that carries over to new ones; "
              f"{retry} a weight decay, --weight-decay {suggested_weight_decay(n_items):g} for a list of {n_items:,} "
              f"items, more data, or fewer --steps" if result["train_loss"] < 0.9 * math.log(V)
              else f"the training loss went up, not down; {retry} a smaller --lr"
              # the last steps' against the first's; or the dev loss, for a run too short to show it (a run of
              # one step records only the loss before its update)
              if max(float(np.mean(losses[-100:])), result["dev_loss"]) > 1.05 * losses[0]
              else f"the training loss rose on its way down; {retry} a smaller --lr" if bounced(losses)
              else (f"the training loss came down from {fell[0]:.2f} to {fell[1]:.2f}, but a start that far above "
                    f"a uniform guess's needs more steps to get below it; {retry} more --steps") if fell
              else f"training did not get anywhere; {retry} a larger --lr or more --steps")
    return (f"warning: the dev loss is no better than ln {V} = {math.log(V):.2f}, the loss of a uniform "
            f"guess: {advice}")
