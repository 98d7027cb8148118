"""The MLP language model of Bengio et al. (2003), "A Neural Probabilistic
Language Model", as rebuilt in the makemore "part 2: MLP" lecture.

Parameters (shape letters as in layers.py):

    C  (V, E)     embedding table            the paper's C
    W1 (T*E, H)   hidden layer weights       the paper's H
    b1 (H,)       hidden layer bias          the paper's d
    W2 (H, V)     output layer weights       the paper's U
    b2 (V,)       output layer bias          the paper's b

The paper's optional direct connections from the embeddings to the output
(its W) are left out, as in the lecture.
"""
import numpy as np

from . import layers

PARAM_NAMES = ("C", "W1", "b1", "W2", "b2")


def init_params(vocab_size, block_size, n_embd, n_hidden, *, seed=0, init="scaled", dtype=np.float32):
    """Random parameters, keyed by name.

    init="lecture": every tensor standard normal, as in the part 2 lecture. The
        initial loss is far above ln V (the softmax starts confidently wrong) and
        many tanh units start saturated.
    init="scaled": the fix from the part 3 lecture: W1 scaled by the tanh gain
        (5/3) over sqrt(fan_in), b1 and W2 small, b2 zero. The logits start near
        zero, so the initial loss is about ln V.
    """
    V, T, E, H = vocab_size, block_size, n_embd, n_hidden
    for name, value in (("vocab_size", V), ("block_size", T), ("n_embd", E), ("n_hidden", H)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((V, E))
    W1 = rng.standard_normal((T * E, H))
    b1 = rng.standard_normal(H)
    W2 = rng.standard_normal((H, V))
    b2 = rng.standard_normal(V)
    if init == "scaled":
        W1 *= (5 / 3) / np.sqrt(T * E)
        b1 *= 0.01
        W2 *= 0.01
        b2 *= 0.0
    elif init != "lecture":
        raise ValueError(f"init must be 'scaled' or 'lecture', got {init!r}")
    params = {"C": C, "W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return {k: v.astype(dtype) for k, v in params.items()}


def num_params(params):
    """Total number of scalars: V*E + T*E*H + H + H*V + V (11,897 for 27, 3, 10, 200)."""
    return int(sum(p.size for p in params.values()))


def forward(params, X):
    """Logits (B, V) for contexts X (B, T), and the caches the backward pass needs."""
    emb, emb_cache = layers.embedding_forward(params["C"], X)  # (B, T, E)
    embcat, cat_cache = layers.concat_forward(emb)  # (B, T*E)
    hpreact, lin1_cache = layers.linear_forward(embcat, params["W1"], params["b1"])  # (B, H)
    h, tanh_cache = layers.tanh_forward(hpreact)  # (B, H)
    logits, lin2_cache = layers.linear_forward(h, params["W2"], params["b2"])  # (B, V)
    return logits, (emb_cache, cat_cache, lin1_cache, tanh_cache, lin2_cache)


def loss_and_grads(params, X, Y, *, return_intermediates=False):
    """Mean cross-entropy (nats) on the batch and its gradient for every parameter.

    Inputs:  params dict of arrays; X (B, T) contexts; Y (B,) targets.
    Returns: loss (float), grads (dict keyed like params, same shapes and
             dtypes). With return_intermediates=True, also a dict with the
             gradients of the loss for dlogits, dh, dhpreact, dembcat, demb.
    params is not modified.
    """
    logits, (emb_cache, cat_cache, lin1_cache, tanh_cache, lin2_cache) = forward(params, X)
    loss, ce_cache = layers.softmax_cross_entropy_forward(logits, Y)

    # Backward, in reverse order of the forward pass.
    dlogits = layers.softmax_cross_entropy_backward(1.0, ce_cache)  # (B, V)
    dh, dW2, db2 = layers.linear_backward(dlogits, lin2_cache)  # (B, H), (H, V), (V,)
    dhpreact = layers.tanh_backward(dh, tanh_cache)  # (B, H)
    dembcat, dW1, db1 = layers.linear_backward(dhpreact, lin1_cache)  # (B, T*E), (T*E, H), (H,)
    demb = layers.concat_backward(dembcat, cat_cache)  # (B, T, E)
    dC = layers.embedding_backward(demb, emb_cache)  # (V, E)

    grads = {"C": dC, "W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
    if return_intermediates:
        inter = {"logits": dlogits, "h": dh, "hpreact": dhpreact, "embcat": dembcat, "emb": demb}
        return float(loss), grads, inter
    return float(loss), grads


def logits(params, X):
    """Next-symbol logits (B, V) for contexts X (B, T)."""
    return forward(params, X)[0]


def next_probs(params, X, temperature=1.0):
    """Next-symbol probabilities (B, V) for contexts X (B, T): softmax(logits / temperature)."""
    z = logits(params, X) / temperature  # (B, V)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def split_loss(params, X, Y, chunk_size=65536):
    """Mean NLL (nats) over a whole split, evaluated in chunks so memory stays bounded."""
    n = len(Y)
    if n == 0:
        raise ValueError("cannot evaluate the loss of an empty split")
    total = 0.0
    for start in range(0, n, chunk_size):  # over chunks of data, not the math
        lg = logits(params, X[start:start + chunk_size]).astype(np.float64)  # sum in float64
        loss, _ = layers.softmax_cross_entropy_forward(lg, Y[start:start + chunk_size])
        total += float(loss) * len(lg)  # undo the chunk's mean before adding
    return total / n
