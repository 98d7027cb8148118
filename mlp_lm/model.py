"""The MLP language model of Bengio et al. (2003), "A Neural Probabilistic
Language Model", as rebuilt in the makemore "part 2: MLP" lecture: the forward pass, the
loss and its gradients assembled from layers.py, and evaluation.

Its parameters (C, W1, b1, W2, b2, and Wd for the paper's direct connections), their shapes,
initialisation and checks are params.py's; init_params, num_params and the rest are
importable from here too, where the lecture's readers look for them.
"""
import numpy as np

from . import folded, layers
from .checks import check_chunk_size, check_indices, is_real
from .sampling import check_temperature, tempered
from .params import (DECAYED, KNOWN_PARAMS, OPTIONAL_PARAMS, PARAM_NAMES, check_params, checked_sizes, init_params,
                     num_params, param_shapes, shape_problem)

__all__ = ["forward", "embedding_mask_shape", "check_masks", "loss_and_grads", "l2_penalty", "logits", "next_probs",
           "rows_per_chunk", "chunk_rows", "check_examples", "split_loss", "EVAL_BYTES", "EVAL_ROWS",
           "REEVALUATION_TOLERANCE",
           "MASKED", "FOLDED_MASKED", "STEP_MASKS",
           # params.py's, here too
           "DECAYED", "KNOWN_PARAMS", "OPTIONAL_PARAMS", "PARAM_NAMES", "check_params", "checked_sizes", "init_params",
           "num_params", "param_shapes", "shape_problem"]

MASKED = {"embcat", "h"}  # the values dropout can act on
FOLDED_MASKED = {"C", "h"}  # with fold=True: the per-position tables of C (T, V, E) and h
STEP_MASKS = {"C"}  # one for the whole step, not a row an example: parallel.BatchSplit gives it to every part


def forward(params, X, masks=None, fold=False):
    """Logits (B, V) for contexts X (B, T), and the caches the backward pass needs.

    masks: training-time dropout masks {"embcat": (B, T*E), "h": (B, H)} from
    layers.dropout_mask (either may be missing); None evaluates the network as is.
    fold=True computes the maps of embcat (W1, and Wd) from per-position tables (folded.py): the
    same function, less work when V is small beside B. Its embedding dropout mask is "C": (T, V, E).
    """
    if not isinstance(fold, bool):  # "no" would fold
        raise TypeError(f"fold is True or False, got {fold!r}")
    check_params(params)
    masks = check_masks(masks, fold=fold)
    try:
        return _forward(params, X, masks, fold)
    except ValueError:  # a layer's complaint about shapes; when the parameters, X or a mask misfit, say which
        problem = shape_problem(params, _length(X)) or _inputs_problem(params, X, masks, fold)
        if problem:
            raise ValueError(problem) from None
        raise


def _length(X):
    """The length T of the contexts X (B, T), or None for an X of another number of dimensions."""
    return np.shape(X)[1] if np.ndim(X) == 2 else None


def _inputs_problem(params, X, masks, fold):
    """For parameters that fit together: whether X is not (B, T) contexts of their T, or which mask has
    another shape than the values it drops (forward's message); None when neither."""
    (V, E), H = params["C"].shape, params["W1"].shape[1]
    T = params["W1"].shape[0] // E
    if np.ndim(X) != 2 or np.shape(X)[1] != T:
        return f"X must be (B, T) = (B, {T}) contexts for this network, got shape {np.shape(X)}"
    wanted = dict([embedding_mask_shape(len(X), T, V, E, fold), ("h", (len(X), H))])
    odd = [k for k, m in masks.items() if m is not None and np.shape(m) != wanted[k]]
    letters = {"embcat": "(B, T*E)", "C": "(T, V, E)", "h": "(B, H)"}
    return f"masks[{odd[0]!r}] is {np.shape(masks[odd[0]])}, not {letters[odd[0]]} = {wanted[odd[0]]}" if odd else None


def _forward(params, X, masks, fold):
    """forward() on checked params and masks."""
    if not fold:  # the lecture's path
        emb, emb_cache = layers.embedding_forward(params["C"], X)  # (B, T, E)
        embcat, cat_cache = layers.concat_forward(emb)  # (B, T*E)
        embcat, drop1_cache = layers.dropout_forward(embcat, masks.get("embcat"))  # (B, T*E)
        emb_caches = emb_cache, cat_cache, drop1_cache
        hpreact, lin1_cache = layers.linear_forward(embcat, params["W1"], params["b1"])  # (B, H)
    else:  # the same hpreact from per-position tables of C @ W1 (folded.py)
        emb_caches = None
        hpreact, lin1_cache = folded.fold_forward(params["C"], X, params["W1"], masks.get("C"))  # (B, H)
        if params["b1"].shape != hpreact.shape[1:]:  # a (1,) or (B, H) b1 would broadcast, and db1 be (H,)
            raise ValueError(f"b1 must be (H,) = {hpreact.shape[1:]}, got {params['b1'].shape}")
        hpreact += params["b1"]
    h, tanh_cache = layers.tanh_forward(hpreact)  # (B, H)
    h, drop2_cache = layers.dropout_forward(h, masks.get("h"))  # (B, H)
    logits, lin2_cache = layers.linear_forward(h, params["W2"], params["b2"])  # (B, V)
    direct_cache = None
    if "Wd" in params:  # the paper's direct connections: embcat straight to the logits
        if not fold:
            direct, direct_cache = layers.linear_forward(embcat, params["Wd"])  # (B, V)
        else:
            direct, direct_cache = folded.fold_forward(params["C"], X, params["Wd"], masks.get("C"))  # (B, V)
        logits += direct
    return logits, (emb_caches, lin1_cache, tanh_cache, drop2_cache, lin2_cache, direct_cache)


def embedding_mask_shape(B, T, V, E, fold=False):
    """The key and shape of the embeddings' dropout mask: ("embcat", (B, T*E)), or ("C", (T, V, E)) with fold."""
    return ("C", (T, V, E)) if fold else ("embcat", (B, T * E))


def check_masks(masks, B=None, fold=False):
    """masks as forward() takes them ({} for None), or ValueError: a mask under another name would
    be no dropout at all. With B, every mask on examples must also have B rows (parallel.BatchSplit
    slices them by rows, which would cut a wrong one silently); fold's "C" is the step's, not an example's."""
    masks = {} if masks is None else masks
    keys = FOLDED_MASKED if fold else MASKED
    if not isinstance(masks, dict) or not masks.keys() <= keys:
        raise ValueError(f"masks must be a dict with the keys {' and '.join(map(repr, sorted(keys)))} (either may "
                         f"be left out{', with fold=True' if fold else ''}), got "
                         f"{list(masks) if isinstance(masks, dict) else type(masks).__name__}")
    if B is not None:
        rows = {k: np.shape(m) for k, m in masks.items() if m is not None and k not in STEP_MASKS}
        if any(shape[:1] != (B,) for shape in rows.values()):
            raise ValueError(f"the masks must have one row per example of the batch ({B}), got shapes {rows}")
    return masks


def loss_and_grads(params, X, Y, *, masks=None, smoothing=0.0, fold=False, return_intermediates=False):
    """Mean cross-entropy (nats) on the batch and its gradient for every parameter.

    Inputs:  params dict of arrays; X (B, T) contexts; Y (B,) targets;
             masks: dropout masks for forward(); smoothing: label smoothing eps;
             fold: the first layer from per-position tables (forward(), folded.py).
    Returns: loss (float), grads (dict keyed like params, same shapes and
             dtypes). With return_intermediates=True, also a dict of the loss's
             gradients with respect to the intermediates, keyed by their forward
             names: "logits", "h", "hpreact", "embcat", "emb" (dlogits, dh, ...;
             h and embcat are taken after dropout, where there is dropout;
             with fold, embcat and emb are never formed, so only the first three).
    params is not modified. They must fit together, as forward() checks on every call (a float32 C
    among float64 weights is a ValueError, not a float64 dC).
    """
    logits, caches = forward(params, X, masks, fold)
    emb_caches, lin1_cache, tanh_cache, drop2_cache, lin2_cache, direct_cache = caches
    loss, ce_cache = layers.softmax_cross_entropy_forward(logits, Y, smoothing)

    # Backward, in reverse order of the forward pass.
    dlogits = layers.softmax_cross_entropy_backward(1.0, ce_cache)  # (B, V)
    dh, dW2, db2 = layers.linear_backward(dlogits, lin2_cache)  # (B, H), (H, V), (V,)
    # (B, H), the gradient at tanh's output; without dropout it is dh itself
    dhtanh = dh if drop2_cache is None else layers.dropout_backward(dh, drop2_cache)
    dhpreact = layers.tanh_backward(dhtanh, tanh_cache)  # (B, H)
    grads, inter = {}, {"logits": dlogits, "h": dh, "hpreact": dhpreact}
    if not fold:  # the lecture's path
        emb_cache, cat_cache, drop1_cache = emb_caches
        dembcat, dW1, db1 = layers.linear_backward(dhpreact, lin1_cache)  # (B, T*E), (T*E, H), (H,)
        if direct_cache is not None:
            # embcat feeds two paths, the hidden layer and the direct connections: their gradients add.
            dembcat_direct, grads["Wd"], _ = layers.linear_backward(dlogits, direct_cache)  # (B, T*E), (T*E, V)
            dembcat += dembcat_direct
        # (B, T*E), the gradient at the concatenation's output; without dropout it is dembcat itself
        dembcat_cat = dembcat if drop1_cache is None else layers.dropout_backward(dembcat, drop1_cache)
        demb = layers.concat_backward(dembcat_cat, cat_cache)  # (B, T, E)
        dC = layers.embedding_backward(demb, emb_cache)  # (V, E)
        inter.update(embcat=dembcat, emb=demb)
    else:  # C's gradient through W1's tables and Wd's adds up
        dC, dW1 = folded.fold_backward(dhpreact, lin1_cache)  # (V, E), (T*E, H)
        db1 = dhpreact.sum(axis=0)  # (H,)
        if direct_cache is not None:
            dC_direct, grads["Wd"] = folded.fold_backward(dlogits, direct_cache)  # (V, E), (T*E, V)
            dC += dC_direct

    grads = {"C": dC, "W1": dW1, "b1": db1, "W2": dW2, "b2": db2, **grads}
    if return_intermediates:
        return float(loss), grads, inter
    return float(loss), grads


def l2_penalty(params, weight_decay):
    """The paper's weight decay as a penalty: (lambda / 2) * sum of squares of the decayed tensors
    (the paper names a weight decay penalty without its formula; this is our reading, derivations.md).

    Returns (penalty, grads) with grads[k] = lambda * params[k] for k in DECAYED
    (the biases get none). SGD adds these to the loss's gradients.
    """
    if not is_real(weight_decay) or not 0 <= weight_decay < np.inf:  # NaN fails this too
        raise ValueError(f"weight_decay must be finite and 0 or more, got {weight_decay!r}")
    present = [k for k in DECAYED if k in params]
    penalty = 0.5 * weight_decay * sum(float(np.sum(params[k].astype(np.float64) ** 2)) for k in present)
    return penalty, {k: weight_decay * params[k] for k in present}


def logits(params, X):
    """Next-symbol logits (B, V) for contexts X (B, T).

    Raises FloatingPointError if the arithmetic overflows, or the logits are not finite or so large
    that rounding moves them by a nat (see bounds.magnitude_problem): parameters no trained model has (a
    damaged checkpoint), never a result to report. The check on the logits themselves also covers
    what BLAS threads compute, whose overflows numpy does not see.
    """
    check_params(params)  # the entry point from Python: parameters that do not fit together are said to, before
    problem = shape_problem(params, _length(X))  # any arithmetic (a W2 of another vocabulary would give its logits)
    if problem:
        raise ValueError(problem)
    T = params["W1"].shape[0] // params["C"].shape[1]
    if np.ndim(X) != 2 or np.shape(X)[1] != T:  # else a matmul's complaint about its "core dimension"
        raise ValueError(f"X must be contexts (B, {T}) for this network (T={T}), got shape {np.shape(X)}")
    with np.errstate(over="raise", invalid="raise"):
        z = forward(params, X)[0]  # (B, V)
    largest = float(np.abs(z).max(initial=0.0))
    if not largest * np.finfo(z.dtype).eps < 1:  # NaN fails this too
        raise FloatingPointError(f"its logits reach {largest:.3g}, too large for {z.dtype} to resolve")
    return z


def next_probs(params, X, temperature=1.0):
    """Next-symbol probabilities (B, V) for contexts X (B, T): softmax(logits / temperature).

    temperature 0 is greedy decoding: all the probability on the likeliest symbol.
    Raises ValueError for a temperature that is negative or NaN (a negative one would turn
    the distribution upside down).
    """
    check_temperature(temperature)  # before the forward pass
    return tempered(logits(params, X).astype(np.float64), temperature)  # (B, V)


# relative: one model's loss evaluated again, where another BLAS kernel or thread count adds its terms in another
# order (2e-9 and 3e-8 measured), against the loss recorded for it
REEVALUATION_TOLERANCE = 1e-6

EVAL_BYTES = 256 * 2**20  # memory an evaluation chunk may use, whatever the vocabulary
# and rows it may take: a chunk's arrays then stay in the caches and in the memory malloc keeps for reuse
# (runtime.keep_freed_memory), where one of 59,000 rows (the lecture's model in 256 MB) is fresh pages each time.
# names' training split took 0.65 to 0.7 of the CPU time in chunks of 2,048 (the lecture's model; the best preset's
# 0.84), 1,024 about the same, 4,096 more (2-core Ice Lake, one BLAS thread)
EVAL_ROWS = 2048


def rows_per_chunk(params, budget=EVAL_BYTES):
    """How many rows an evaluation chunk can hold in `budget` bytes, at most EVAL_ROWS: a row costs its
    logits a few times over (float32 and float64 copies, shifted, exponentiated) and its hidden layer twice."""
    (D, H), V = params["W1"].shape, params["b2"].shape[0]
    return max(1, min(EVAL_ROWS, budget // (8 * (5 * V + 2 * H + D))))


def chunk_rows(params, n):
    """The rows of each chunk of an evaluation of n examples: rows_per_chunk's, shared out evenly, so that the
    last chunk is never a few rows. BLAS computes a product of a few rows by other kernels, which round a
    float32 network's logits otherwise: a loss 1e-9 away (relative) from that of the same examples in one chunk."""
    most = rows_per_chunk(params)
    chunks = -(-n // most)  # as few as hold n: n / most, rounded up
    return -(-n // chunks) if chunks > 1 else most


def check_examples(params, X, Y):
    """Raise ValueError unless the parameters fit together (their shapes, from C and W1) and X (N, T)
    and Y (N,) are N >= 1 examples for this network: contexts of its T, one target each, integer
    symbol indices in 0..V-1 (numpy would read -1 as the last symbol and a (N, 1) Y would broadcast
    against (N,), both without a word)."""
    check_params(params)  # and their dtypes
    problem = shape_problem(params, _length(X))  # a (1,) b1 or a W2 of another vocabulary would broadcast into an answer
    if problem:
        raise ValueError(problem)
    V, E = params["C"].shape
    T = params["W1"].shape[0] // E
    if np.ndim(X) != 2 or np.ndim(Y) != 1 or len(X) != len(Y) or np.shape(X)[1] != T:
        raise ValueError(f"X must be (N, {T}) and Y (N,) for the same N, got {np.shape(X)} and {np.shape(Y)}")
    if len(Y) == 0:
        raise ValueError("cannot evaluate the loss of an empty split")
    for name, a in (("X", np.asarray(X)), ("Y", np.asarray(Y))):
        check_indices(a, V, name)


def split_loss(params, X, Y, chunk_size=None, stop=None):
    """Mean NLL (nats) over a whole split, evaluated in chunks so memory stays bounded
    (chunk_size rows; by default chunk_rows': at most EVAL_ROWS, and fewer where a large vocabulary fills EVAL_BYTES).
    stop: a function asked before each chunk; once it returns true, None instead (a split of
    hundreds of millions of examples takes minutes, and a Ctrl-C should not wait for all of them)."""
    check_examples(params, X, Y)
    n = len(Y)
    chunk_size = check_chunk_size(chunk_size) or chunk_rows(params, n)
    total = 0.0
    for start in range(0, n, chunk_size):  # over chunks of data, not the math
        if stop is not None and stop():
            return None
        lg = logits(params, X[start:start + chunk_size]).astype(np.float64)  # sum in float64
        loss, _ = layers.softmax_cross_entropy_forward(lg, Y[start:start + chunk_size])
        total += float(loss) * len(lg)  # undo the chunk's mean before adding
    return total / n
