"""The first layer folded: embedding lookup, concatenation and a linear map as one table lookup.

Split W (T*E, N) into T blocks W_t (E, N), one per context position. The linear map of the
concatenated embeddings is then a sum over the positions,

    embcat @ W = sum_t C[X[:, t]] @ W_t = sum_t (C @ W_t)[X[:, t]],

so a table P_t = C @ W_t (V, N) for each position, computed once a step, gives every example's
output as a sum of T rows. Stacking the tables into P (T*V, N), the sum is one product:

    out = S @ P,    S (B, T*V) the contexts one-hot: row b has a 1 in column t*V + X[b, t] for each t.

The tables cost T*V*E*N multiply-adds a step, the product B*T*N additions (S is sparse, T ones
a row, and scipy.sparse touches only those), against B*T*E*N multiply-adds for embcat @ W: a
fifth of them in the best preset (V = 27, B = 128). It computes the same numbers up to rounding,
and pays only when the vocabulary is small beside the batch and the first layer's products are
a large share of a step (docs/best.md: the best preset's step in a fifth less time; the
lecture's slower but at batch 4096).
model.py's forward uses it with fold=True, for W1 and the direct connections' Wd; evaluation
keeps the plain path.

Dropout on the embeddings folds only if it acts on the tables: each step draws a mask M (T, V, E)
and the tables are made from C_t = C * M_t. An example sees each of its context embeddings with
each element dropped with probability p, independently across positions and elements, exactly
as with a mask on embcat; only examples that share a symbol at a position share its mask. So
every example's expected loss is the same as with a mask on embcat, and the gradient is still
an unbiased estimate of it (docs/derivations.md#the-folded-first-layer).

Shape letters as in layers.py; N is the map's output width (H for W1, V for Wd).
"""
import numpy as np

from .checks import check_indices, checked_mask


def contexts_onehot(X, V, dtype):
    """S (B, T*V), sparse: row b has a 1 in column t*V + X[b, t] for each position t.

    X must be (B, T) symbol indices in 0..V-1: a -1 would land in the position before's
    columns, and a V past the last column, without a word."""
    import scipy.sparse  # here, not at the top: every command imports this module, few fold
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be (B, T) symbol indices, got shape {X.shape}")
    check_indices(X, V, "X")
    B, T = X.shape
    columns = (X.astype(np.intp, copy=False) + V * np.arange(T)).reshape(-1)  # (B*T,): row b's T columns, in order
    ones = np.ones(B * T, dtype=dtype)
    return scipy.sparse.csr_array((ones, columns, np.arange(0, B * T + 1, T)), shape=(B, T * V))


def fold_forward(C, X, W, mask=None):
    """The linear map of the concatenated context embeddings, embcat @ W, from per-position tables.

    Inputs:  C (V, E) embedding table; X (B, T) symbol indices in 0..V-1; W (T*E, N);
             mask (T, V, E) dropout mask on the table at each position (layers.dropout_mask), or None.
    Returns: out (B, N) = S @ P, P[t*V + v] = Ct[t, v] @ W_t with Ct[t] = C * mask[t] (C without a mask); cache.
    """
    X = np.asarray(X)
    check_indices(X, C.shape[0], "X")
    V, E = C.shape
    if X.ndim != 2 or W.ndim != 2 or W.shape[0] != X.shape[1] * E:
        raise ValueError(f"X must be (B, T) and W (T*E, N) with E={E}, got {X.shape} and {W.shape}")
    T = X.shape[1]
    mask = checked_mask(mask, (T, V, E), C.dtype, f"(T, V, E) = {(T, V, E)}")
    Ct = np.broadcast_to(C, (T, V, E)) if mask is None else C * mask  # (T, V, E), one copy of C a position
    Wt = W.reshape(T, E, -1)  # (T, E, N), a view: block t is W_t
    P = np.matmul(Ct, Wt).reshape(T * V, -1)  # (T*V, N), T products (V, E) @ (E, N)
    S = contexts_onehot(X, V, P.dtype)  # (B, T*V)
    out = S @ P  # (B, N)
    if np.geterr()["over"] == "raise" and not np.isfinite(out).all():  # scipy's sums do not heed np.errstate
        raise FloatingPointError("overflow encountered in the folded first layer's sum of table rows")
    return out, (S, Ct, Wt, mask)


def fold_backward(dout, cache):
    """docs/derivations.md#the-folded-first-layer

    Backward through out = S @ P and P_t = C_t @ W_t: the gradient reaching table row (t, v) is the
    sum of dout over the examples with symbol v at position t (S^T dout); from there each table's
    product gives dW_t and dC_t as any linear map does, and C's gradient adds up over the positions.

    Inputs:  dout (B, N).
    Returns: dC (V, E), dW (T*E, N).
    """
    S, Ct, Wt, mask = cache
    T, V, E = Ct.shape
    dP = (S.T @ dout).reshape(T, V, -1)  # (T, V, N): a scatter-add by symbol and position
    dW = np.matmul(Ct.transpose(0, 2, 1), dP).reshape(T * E, -1)  # (T*E, N): dW_t = C_t^T dP_t
    dCt = np.matmul(dP, Wt.transpose(0, 2, 1))  # (T, V, E): dC_t = dP_t W_t^T
    if mask is not None:
        dCt *= mask  # C_t = C * M_t, and the mask is a constant of the step
    return dCt.sum(axis=0), dW  # (V, E): C feeds every position's table
