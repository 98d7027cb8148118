"""The model's calculus: every forward pass with its hand-derived backward pass.

Read top to bottom, this is the whole model in forward order:

    emb     = C[X]                      embedding lookup         (B, T, E)
    embcat  = emb.reshape(B, T*E)       concatenation            (B, T*E)
    hpreact = embcat @ W1 + b1          linear                   (B, H)
    h       = tanh(hpreact)             tanh                     (B, H)
    logits  = h @ W2 + b2               linear                   (B, V)
            (+ embcat @ Wd)             the paper's direct connections, optional
    loss    = mean(-log softmax(logits)[Y])   softmax cross-entropy   scalar

Training can also multiply embcat and h by a dropout mask (dropout_forward),
and smooth the cross-entropy's targets (label smoothing); both are off in the
lecture's model.

Shape letters: B batch, T block size (context length), E embedding size,
H hidden size, V vocabulary size; D -> M, a layer's widths where one serves several.

Each `x_forward(...)` returns `(out, cache)`; each `x_backward(dout, cache)`
takes the gradient of the loss with respect to `out` and returns fresh arrays
with the gradients of the loss with respect to the forward's inputs, named
`d` + the input's name. Nothing accumulates into shared buffers. Float arrays
in are numpy arrays (a list, a torch tensor or an np.matrix, whose * multiplies
matrices, is a TypeError); X, Y may be lists.
The other way round is not promised: a forward's output may be a view of
its input (concat_forward, dropout_forward without a mask) or its own cache
(tanh_forward keeps its output), and the caches hold the inputs themselves
(X, Y, x, W), so change none of them in place before the backward.

The derivations are in docs/derivations.md; each backward names its section there.
A line that reads less plainly than its formula is for speed, measured in
docs/performance.md ("What each change bought"): a.dot(b) for a @ b (the same BLAS
call without @'s general machinery, a twentieth of a batch-32 step), C.take for
C[X], work done in place, a one-hot product for the embedding's scatter-add.
"""
import numpy as np

from . import onehot
from .checks import check_generator, check_indices, check_upstream, checked_mask, is_array, is_real, not_arrays

ONEHOT_MAX = 1 << 20  # embedding_backward builds a one-hot matrix up to this many entries (4 MB in float32)


# --- embedding lookup ------------------------------------------------------

def embedding_forward(C, X):
    """Look up each context symbol's row of the embedding table.

    Inputs:  C (V, E) embedding table; X (B, T) integer symbol indices in 0..V-1.
    Returns: emb (B, T, E) with emb[b, t] = C[X[b, t]]; cache.
    """
    X = np.asarray(X)
    if not is_array(C):
        raise not_arrays(C=C)
    if X.ndim != 2 or C.ndim != 2:  # else concatenation's complaint about unpacking, or a wrong emb taken in silence
        raise ValueError(f"C must be (V, E) and X (B, T) symbol indices, one context a row, got shapes {np.shape(C)} "
                         f"and {X.shape}")
    check_indices(X, C.shape[0], "X")
    emb = C.take(X, axis=0)  # (B, T, E): C[X], by ndarray.take, which skips fancy indexing's general machinery
    return emb, (X, C.shape)


def embedding_backward(demb, cache):
    """docs/derivations.md#embedding-lookup-a-scatter-add

    Row C[v] was copied to every (b, t) with X[b, t] == v, so its gradient is
    the sum of demb[b, t] over those positions.

    Inputs:  demb (B, T, E).
    Returns: dC (V, E).
    """
    X, C_shape = cache
    V, E = C_shape
    check_upstream(demb, (*X.shape, E), "demb")
    idx = X.reshape(-1)  # (B*T,)
    demb2 = demb.reshape(-1, E)  # (B*T, E)
    if idx.size * V <= ONEHOT_MAX:
        # dC = O^T demb, O the (B*T, V) one-hot rows of X: one matrix product, two to five times
        # faster than np.add.at's one-by-one adds while O is small (V in the tens or hundreds).
        return onehot.rows(idx, V, demb.dtype).T.dot(demb2)  # (B*T, V)^T (B*T, E) = (V, E)
    dC = np.zeros(C_shape, dtype=demb.dtype)  # (V, E)
    # np.add.at, not dC[X] += demb: fancy-index assignment keeps only one write per repeated index.
    np.add.at(dC, idx, demb2)
    return dC


# --- concatenation ---------------------------------------------------------

def concat_forward(emb):
    """Concatenate the T context embeddings of each example into one row.

    Inputs:  emb (B, T, E).
    Returns: embcat (B, T*E), row b = [emb[b, 0], emb[b, 1], ..., emb[b, T-1]]; cache.
    """
    if not is_array(emb):
        raise not_arrays(emb=emb)
    try:
        B, T, E = emb.shape
    except ValueError:  # "not enough values to unpack"
        raise ValueError(f"emb must be (B, T, E), got shape {emb.shape}") from None
    embcat = emb.reshape(B, T * E)  # (B, T*E), a view: no copy
    return embcat, emb.shape


def concat_backward(dembcat, cache):
    """docs/derivations.md#concatenation-a-reshape

    Concatenation only moves numbers, so its backward moves the gradients back.

    Inputs:  dembcat (B, T*E).
    Returns: demb (B, T, E).
    """
    B, T, E = cache
    check_upstream(dembcat, (B, T * E), "dembcat")
    return dembcat.reshape(cache).copy()  # (B, T, E); a copy, so no caller aliases dembcat


# --- linear ----------------------------------------------------------------

def linear_forward(x, W, b=None):
    """Affine map (linear without a bias when b is None, as for the direct connections).

    Inputs:  x (B, D); W (D, M); b (M,) or None.
    Returns: out (B, M) = x @ W + b; cache.
    """
    if not (is_array(x) and is_array(W) and (b is None or is_array(b))):
        raise not_arrays(x=x, W=W, **({} if b is None else {"b": b}))  # b=None: no bias
    try:
        out = x.dot(W)  # (B, M)
    except ValueError:  # numpy's "shapes not aligned": said below, in the layer's terms
        out = None
    # Checked on the product, two thirds of the cost of checking x and W: a 1-D or 3-D x or W gives
    # no (B, M) out. A (1,) b, or a 1-D x, would broadcast into a right-looking answer whose
    # backward is wrong.
    if out is None or out.ndim != 2 or (b is not None and b.shape != out.shape[1:]):
        turned = x.ndim == W.ndim == 2 and W.shape[1] == x.shape[1] != W.shape[0]
        raise ValueError(f"x must be (B, D), W (D, M) and b (M,), got {x.shape}, {W.shape} and "
                         f"{None if b is None else b.shape}"
                         + ("; W in torch.nn.Linear's layout, (outputs, inputs)? Pass W.T" if turned else ""))
    if b is not None:
        try:
            out += b  # in place: one array for the result, not two
        except TypeError:  # numpy's casting error: integer x and W give an integer out, which a float b cannot enter
            raise TypeError(f"x, W and b must be floating-point arrays, got {x.dtype}, {W.dtype} and {b.dtype}; "
                            f"astype(np.float64) makes them") from None
    return out, (x, W, b is not None)


def linear_backward(dout, cache):
    """docs/derivations.md#linear

    Inputs:  dout (B, M).
    Returns: dx (B, D), dW (D, M), db (M,) (None when the forward had no bias).
    """
    x, W, has_bias = cache
    check_upstream(dout, (x.shape[0], W.shape[1]), "dout")
    dx = dout.dot(W.T)  # (B, D)
    dW = x.T.dot(dout)  # (D, M)
    db = dout.sum(axis=0) if has_bias else None  # (M,): b was broadcast over the batch, so its gradient sums over it
    return dx, dW, db


# --- tanh ------------------------------------------------------------------

def tanh_forward(x):
    """Elementwise tanh.

    Inputs:  x (B, H).
    Returns: out (B, H) = tanh(x); cache.
    """
    if not is_array(x):
        raise not_arrays(x=x)
    out = np.tanh(x)  # (B, H)
    return out, out


def tanh_backward(dout, cache):
    """docs/derivations.md#tanh

    d tanh(x)/dx = 1 - tanh(x)^2, computed from the saved output.

    Inputs:  dout (B, H).
    Returns: dx (B, H).
    """
    out = cache
    check_upstream(dout, out.shape, "dout")
    dx = out * out  # (B, H); then 1 - out^2 and the product, in place in the same array
    np.subtract(1.0, dx, out=dx)
    dx *= dout
    return dx


# --- dropout ---------------------------------------------------------------

def dropout_mask(shape, p, rng, dtype=np.float64):
    """Inverted dropout's mask: 0 with probability p, else 1/(1-p), so E[mask] = 1.

    Inputs:  shape, (B, D) (fold's (T, V, E)); p in [0, 1); rng, a np.random.Generator.
    Returns: the mask of `shape`, or None when p is 0 (dropout_forward then passes x through).
    Scaling the kept units at training time means evaluation uses the network as is.
    """
    if not is_real(p) or not 0 <= p < 1:  # p = 1 would scale the (no) kept units by 1/0
        raise ValueError(f"the dropout probability must be in [0, 1), got {p!r}")
    check_generator(rng)
    if np.dtype(dtype).kind != "f":  # 1/(1-p) would be truncated to 1
        raise ValueError(f"a dropout mask is floating point, got dtype {np.dtype(dtype)}")
    if not p:
        return None
    keep = rng.random(shape, dtype=np.float32) >= p  # booleans of `shape`: (B, D), or fold's (T, V, E)
    return keep.astype(dtype) * np.asarray(1 / (1 - p), dtype=dtype)


def dropout_forward(x, mask):
    """Inputs:  x (B, D); mask (B, D) from dropout_mask, or None for no dropout.
    Returns: out (B, D) = x * mask; cache.
    """
    if not is_array(x):
        raise not_arrays(x=x)
    mask = checked_mask(mask, x.shape, x.dtype, f"x's {x.shape}")
    return (x if mask is None else x * mask), mask


def dropout_backward(dout, cache):
    """docs/derivations.md#dropout

    The mask is a constant of the step, so d(x * mask)/dx = mask.

    Inputs:  dout (B, D).
    Returns: dx (B, D).
    """
    mask = cache
    if mask is not None:  # (without one it is the identity, whatever the shape)
        check_upstream(dout, mask.shape, "dout")
    elif not is_array(dout):
        raise not_arrays(dout=dout)
    return dout.copy() if mask is None else dout * mask


# --- softmax cross-entropy -------------------------------------------------

def softmax_cross_entropy_forward(logits, Y, smoothing=0.0):
    """Mean negative log likelihood of the targets under softmax(logits).

    Subtracting each row's max before exp changes nothing mathematically
    (softmax is shift-invariant) but keeps exp from overflowing.

    With label smoothing eps > 0 the target is not onehot(Y) but
    q = (1 - eps) onehot(Y) + eps / V, and the loss is the cross-entropy
    -sum_v q_v log p_v: a penalty on over-confident predictions.

    Inputs:  logits (B, V); Y (B,) integer targets in 0..V-1; smoothing eps in [0, 1).
    Returns: loss (a numpy scalar of the logits' dtype, nats); cache.
    """
    Y = np.asarray(Y)
    if not is_array(logits):
        raise not_arrays(logits=logits)
    if logits.ndim != 2 or Y.shape != logits.shape[:1]:  # a (B, 1) Y would broadcast to (B, B) targets
        raise ValueError(f"logits must be (B, V) and Y (B,), got {logits.shape} and {Y.shape}")
    B, V = logits.shape
    if B == 0:
        raise ValueError("an empty batch has no mean loss")
    if V == 0:  # else "Y holds symbol indices outside 0..-1"
        raise ValueError("logits of no symbols (V = 0) have no softmax")
    # (an array of one eps would pass [0, 1), a string fail in Python's words; is_real only for what is not a float)
    if not (type(smoothing) is float or is_real(smoothing)) or not 0 <= smoothing < 1:
        raise ValueError(f"label smoothing must be one number in [0, 1), got {smoothing!r}")
    smoothing = float(smoothing)  # a numpy float32 eps would round 1 - eps, and the loss, to float32
    check_indices(Y, V, "Y")
    shifted = logits - logits.max(axis=1, keepdims=True)  # (B, V), each row's max is 0
    counts = np.exp(shifted)  # (B, V), in (0, 1]
    counts_sum = counts.sum(axis=1)  # (B,), in [1, V], so its log is finite
    # -log p[y] = log(sum_j exp(z_j)) - z_y, taken on the shifted logits: only B logs, never log(0).
    logsum = np.log(counts_sum)  # (B,)
    nll = logsum - shifted[np.arange(B), Y]  # (B,)
    if smoothing:
        # mean_v(-log p_v) = logsum - mean_v(z_v): the uniform part of q costs one mean more.
        nll = (1 - smoothing) * nll + smoothing * (logsum - shifted.mean(axis=1))
    loss = nll.sum() / B  # the mean; .mean() costs more calls for the same number
    probs = np.divide(counts, counts_sum[:, None], out=counts)  # (B, V), normalised in place
    return loss, (probs, Y, smoothing)


def softmax_cross_entropy_backward(dout, cache):
    """docs/derivations.md#softmax-cross-entropy

    The fused backward of softmax and mean cross-entropy: (softmax - q) / B,
    q = onehot(Y) (or its smoothed version).

    Inputs:  dout scalar, the upstream gradient of the loss (1 when it is the loss).
    Returns: dlogits (B, V).
    """
    probs, Y, smoothing = cache
    B, V = probs.shape
    check_upstream(dout, (), "dout")  # the loss is a scalar, and so is its upstream gradient
    if V <= onehot.IDENTITY_MAX_V:  # a small vocabulary: q as a matrix, its one-hot rows taken from an identity
        q = onehot.rows(Y, V, probs.dtype)  # (B, V)
        if smoothing:
            q *= 1 - smoothing
            q += smoothing / V
        dlogits = probs - q  # (B, V)
    else:  # a large one: only B entries of onehot(Y) are not 0, so only they are subtracted, from a copy
        dlogits = probs - smoothing / V if smoothing else probs.copy()  # (B, V)
        dlogits[np.arange(B), Y] -= 1.0 - smoothing  # one target per row: plain indexing is safe here
    dlogits *= float(dout) / B  # 1/B in double precision: a float16 dout would round it, or overflow at B = 70,000
    return dlogits
