"""Drawing new items from any next-symbol model, and telling which are new.

A model here is a function `next_probs(X, temperature)` from contexts X (n, T)
to next-symbol probabilities (n, V): the MLP (`functools.partial(model.next_probs,
params)`) and the n-gram models of counting.py both are one.
"""
import numpy as np

from .data import BOUNDARY, SPLIT_SEED, DataError, read_items_and_digest, split_items


def generate(next_probs, vocab, block_size, n, rng, *, temperature=1.0, top_k=None, prefix="", max_length=64,
             with_ended=False):
    """n samples, all generated at once (one call of next_probs per position, not per sample).

    Each sample starts with `prefix` and ends where the model emits the boundary,
    or after max_length symbols. The uniforms are drawn as one (n, max_length)
    block, so the first k samples of a run with n > k equal those of a run with n = k.
    with_ended=True also returns, per sample, whether it ended on its own (False:
    cut off at max_length).
    """
    V = len(vocab)
    if BOUNDARY in prefix:  # it would end the sample before it starts
        raise DataError(f"a prefix must not contain the boundary symbol {BOUNDARY!r}")
    prefix_ids = vocab.encode(prefix)  # raises DataError for unknown symbols
    ctx = np.zeros((n, block_size), dtype=np.int64)  # (n, T), the boundary pads the start
    for i in prefix_ids:  # a loop over the prefix's characters, shared by all samples
        ctx = np.concatenate([ctx[:, 1:], np.full((n, 1), i)], axis=1)
    steps = max(max_length - len(prefix_ids), 0)
    u = rng.random((n, steps))  # (n, L)
    out = np.zeros((n, steps), dtype=np.int64)  # (n, L), 0 (the boundary) pads finished samples
    done = np.zeros(n, dtype=bool)
    for t in range(steps):  # generation is sequential in time; the samples go in parallel
        p = np.asarray(next_probs(ctx, temperature), dtype=np.float64)  # (n, V)
        if top_k is not None and top_k < V:
            kth = np.partition(p, V - top_k, axis=1)[:, V - top_k, None]  # (n, 1) k-th largest
            p = np.where(p >= kth, p, 0.0)
        cdf = np.cumsum(p, axis=1)  # (n, V)
        # Inverse-CDF sampling: the first index whose cumulative probability exceeds u * total.
        ix = (cdf < u[:, t, None] * cdf[:, -1:]).sum(axis=1)  # (n,)
        ix = np.minimum(ix, V - 1)
        ix[done] = 0
        out[:, t] = ix
        done |= ix == 0
        if done.all():
            break
        ctx = np.concatenate([ctx[:, 1:], ix[:, None]], axis=1)
    samples = []
    for row in out:  # decoding to strings is bookkeeping, not math
        end = np.flatnonzero(row == 0)
        samples.append(prefix + vocab.decode(row[: end[0]] if len(end) else row))
    return (samples, done.tolist()) if with_ended else samples


def novelty(samples, config):
    """Counts of samples in the training set, in dev/test, and new; None with a reason if unknown."""
    data_path = config.get("data")
    if not data_path:
        return None, "the checkpoint does not record its training data"
    try:
        items, sha256 = read_items_and_digest(data_path)
        if config.get("data_sha256") and sha256 != config["data_sha256"]:
            return None, f"the training data {data_path} has changed since training"
        train, dev, test = split_items(items, config.get("split_seed", SPLIT_SEED))
    except DataError as e:  # gone, unreadable or no longer usable
        return None, str(e)
    train, heldout = set(train), set(dev) | set(test)
    in_train = sum(s in train for s in samples)
    in_heldout = sum(s in heldout and s not in train for s in samples)
    return (in_train, in_heldout, len(samples) - in_train - in_heldout), None
