"""One-hot rows: row i of a (n, V) matrix all zeros but a 1 at column idx[i].

The embedding's backward (dC = O^T demb) and the softmax cross-entropy's (dlogits = (probs -
onehot(Y)) / B) both build them, in layers.py; this is how, and how fast.
"""
import functools

import numpy as np

from .checks import check_indices, is_whole

IDENTITY_MAX_V = 64  # rows are taken from a kept identity up to this vocabulary (see rows)


def one_hot(idx, V, dtype):
    """Inputs:  idx (n,) integer symbol indices in 0..V-1; V vocabulary size; dtype.
    Returns: (n, V), row i all zeros but a 1 at column idx[i]: a fresh array.
    """
    idx = np.asarray(idx)
    if idx.ndim != 1:
        raise ValueError(f"idx must be one row of indices (n,), got shape {idx.shape}")
    if not is_whole(V):
        raise ValueError(f"V must be a whole number of symbols, at least 1, got {V!r}")
    check_indices(idx, V, "idx")
    return rows(idx, V, dtype)


def rows(idx, V, dtype):
    """one_hot for indices already checked (by the forward pass that took them)."""
    if V <= IDENTITY_MAX_V:
        # Row i of the identity matrix is the one-hot of i: taking rows of a V x V identity, kept
        # from call to call, is two to three times faster than filling zeros while V is small
        # (27 symbols, 96 rows: 0.8 against 2.1 us); from about 128 symbols and a few hundred rows
        # on it is no faster.
        return _identity(V, np.dtype(dtype)).take(idx, axis=0)
    out = np.zeros((idx.size, V), dtype=dtype)
    out[np.arange(idx.size), idx] = 1  # one 1 per row: plain indexing is safe here
    return out


@functools.lru_cache(maxsize=8)
def _identity(V, dtype):
    """The V x V identity matrix, read-only: one_hot's rows are copies (take), never views of it."""
    eye = np.eye(V, dtype=dtype)
    eye.flags.writeable = False
    return eye
