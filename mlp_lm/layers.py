"""The model's calculus: every forward pass with its hand-derived backward pass.

Read top to bottom, this is the whole model in forward order:

    emb     = C[X]                      embedding lookup         (B, T, E)
    embcat  = emb.reshape(B, T*E)       concatenation            (B, T*E)
    hpreact = embcat @ W1 + b1          linear                   (B, H)
    h       = tanh(hpreact)             tanh                     (B, H)
    logits  = h @ W2 + b2               linear                   (B, V)
    loss    = mean(-log softmax(logits)[Y])   softmax cross-entropy   scalar

Shape letters: B batch, T block size (context length), E embedding size,
H hidden size, V vocabulary size.

Each `x_forward(...)` returns `(out, cache)`; each `x_backward(dout, cache)`
takes the gradient of the loss with respect to `out` and returns fresh arrays
with the gradients of the loss with respect to the forward's inputs, named
`d` + the input's name. Nothing accumulates into shared buffers.

The derivations are written out in docs/derivations.md; each backward below
names its section there.
"""
import numpy as np


# --- embedding lookup ------------------------------------------------------

def embedding_forward(C, X):
    """Look up each context symbol's row of the embedding table.

    Inputs:  C (V, E) embedding table; X (B, T) integer symbol indices.
    Returns: emb (B, T, E) with emb[b, t] = C[X[b, t]]; cache.
    """
    emb = C[X]  # (B, T, E)
    return emb, (X, C.shape)


def embedding_backward(demb, cache):
    """docs/derivations.md#embedding-lookup-a-scatter-add

    Row C[v] was copied to every (b, t) with X[b, t] == v, so its gradient is
    the sum of demb[b, t] over those positions.

    Inputs:  demb (B, T, E).
    Returns: dC (V, E).
    """
    X, C_shape = cache
    E = C_shape[1]
    dC = np.zeros(C_shape, dtype=demb.dtype)  # (V, E)
    # np.add.at, not dC[X] += demb: fancy-index assignment keeps only one write per repeated index.
    np.add.at(dC, X.reshape(-1), demb.reshape(-1, E))
    return dC


# --- concatenation ---------------------------------------------------------

def concat_forward(emb):
    """Concatenate the T context embeddings of each example into one row.

    Inputs:  emb (B, T, E).
    Returns: embcat (B, T*E), row b = [emb[b, 0], emb[b, 1], ..., emb[b, T-1]]; cache.
    """
    B, T, E = emb.shape
    embcat = emb.reshape(B, T * E)  # (B, T*E), a view: no copy
    return embcat, emb.shape


def concat_backward(dembcat, cache):
    """docs/derivations.md#concatenation-a-reshape

    Concatenation only moves numbers, so its backward moves the gradients back.

    Inputs:  dembcat (B, T*E).
    Returns: demb (B, T, E).
    """
    return dembcat.reshape(cache).copy()  # (B, T, E); a copy, so no caller aliases dembcat


# --- linear ----------------------------------------------------------------

def linear_forward(x, W, b):
    """Affine map.

    Inputs:  x (B, D); W (D, M); b (M,).
    Returns: out (B, M) = x @ W + b; cache.
    """
    out = x @ W + b  # (B, M)
    return out, (x, W)


def linear_backward(dout, cache):
    """docs/derivations.md#linear

    Inputs:  dout (B, M).
    Returns: dx (B, D), dW (D, M), db (M,).
    """
    x, W = cache
    dx = dout @ W.T  # (B, D)
    dW = x.T @ dout  # (D, M)
    db = dout.sum(axis=0)  # (M,): b was broadcast over the batch, so its gradient sums over it
    return dx, dW, db


# --- tanh ------------------------------------------------------------------

def tanh_forward(x):
    """Elementwise tanh.

    Inputs:  x (B, H).
    Returns: out (B, H) = tanh(x); cache.
    """
    out = np.tanh(x)  # (B, H)
    return out, out


def tanh_backward(dout, cache):
    """docs/derivations.md#tanh

    d tanh(x)/dx = 1 - tanh(x)^2, computed from the saved output.

    Inputs:  dout (B, H).
    Returns: dx (B, H).
    """
    out = cache
    return dout * (1.0 - out**2)  # (B, H)


# --- softmax cross-entropy -------------------------------------------------

def softmax_cross_entropy_forward(logits, Y):
    """Mean negative log likelihood of the targets under softmax(logits).

    Subtracting each row's max before exp changes nothing mathematically
    (softmax is shift-invariant) but keeps exp from overflowing.

    Inputs:  logits (B, V); Y (B,) integer targets.
    Returns: loss (0-d array, nats); cache.
    """
    B = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # (B, V), each row's max is 0
    counts = np.exp(shifted)  # (B, V), in (0, 1]
    counts_sum = counts.sum(axis=1)  # (B,), in [1, V], so its log is finite
    # -log p[y] = log(sum_j exp(z_j)) - z_y, taken on the shifted logits: only B logs, never log(0).
    loss = (np.log(counts_sum) - shifted[np.arange(B), Y]).mean()
    probs = counts / counts_sum[:, None]  # (B, V)
    return loss, (probs, Y)


def softmax_cross_entropy_backward(dout, cache):
    """docs/derivations.md#softmax-cross-entropy

    The fused backward of softmax and mean NLL: (softmax - onehot(Y)) / B.

    Inputs:  dout scalar, the upstream gradient of the loss (1 when it is the loss).
    Returns: dlogits (B, V).
    """
    probs, Y = cache
    B = probs.shape[0]
    dlogits = probs.copy()  # (B, V)
    dlogits[np.arange(B), Y] -= 1.0  # each row has exactly one target: a plain index is safe here
    dlogits *= dout / B
    return dlogits
