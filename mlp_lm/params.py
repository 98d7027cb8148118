"""The parameters of the MLP (model.py): their names, shapes, initialisation and checks.

Parameters (shape letters as in layers.py):

    C  (V, E)     embedding table            the paper's C
    W1 (T*E, H)   hidden layer weights       the paper's H
    b1 (H,)       hidden layer bias          the paper's d
    W2 (H, V)     output layer weights       the paper's U
    b2 (V,)       output layer bias          the paper's b
    Wd (T*E, V)   direct connections         the paper's W (only with direct=True)

The lecture leaves out the paper's direct connections from the concatenated
embeddings to the logits; init_params(direct=True) puts them back.
"""
import numpy as np

from .checks import is_whole

PARAM_NAMES = ("C", "W1", "b1", "W2", "b2")
OPTIONAL_PARAMS = ("Wd",)
KNOWN_PARAMS = frozenset(PARAM_NAMES + OPTIONAL_PARAMS)
DECAYED = ("C", "W1", "W2", "Wd")  # weight decay acts on weights and the embedding table, never on biases


def init_params(vocab_size, block_size, n_embd, n_hidden, *, direct=False, seed=0, init="scaled",
                dtype=np.float32):
    """Random parameters, keyed by name.

    init="lecture": every tensor standard normal, as in the part 2 lecture. The
        initial loss is far above ln V (the softmax starts confidently wrong) and
        many tanh units start saturated.
    init="scaled": the fix from the part 3 lecture: W1 scaled by the tanh gain
        (5/3) over sqrt(fan_in), b1 and W2 small, b2 zero. The logits start near
        zero, so the initial loss is about ln V.
    direct=True adds the paper's direct connections Wd (T*E, V), zero at the
        start (the paper's W is zero when they are left out), so the network
        starts as the one without them.
    """
    V, T, E, H = checked_sizes(vocab_size, block_size, n_embd, n_hidden, direct)
    if np.dtype(dtype) not in (np.float32, np.float64):  # integers would truncate the weights to 0s
        raise ValueError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
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
    if direct:
        params["Wd"] = np.zeros((T * E, V))
    return {k: v.astype(dtype) for k, v in params.items()}


def checked_sizes(vocab_size, block_size, n_embd, n_hidden, direct):
    """(V, T, E, H) as Python ints, or ValueError for a size that is not a whole number >= 1
    (TypeError for a direct that is not a bool: "no" would add Wd)."""
    V, T, E, H = vocab_size, block_size, n_embd, n_hidden
    for name, value in (("vocab_size", V), ("block_size", T), ("n_embd", E), ("n_hidden", H)):
        if not is_whole(value):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(direct, bool):
        raise TypeError(f"direct is True or False, got {direct!r}")
    return tuple(int(v) for v in (V, T, E, H))  # an np.int8 size would overflow T * E


def param_shapes(V, T, E, H, direct=False):
    """{name: shape} of the parameters for these sizes: the table at the top of this module."""
    shapes = {"C": (V, E), "W1": (T * E, H), "b1": (H,), "W2": (H, V), "b2": (V,)}
    return {**shapes, "Wd": (T * E, V)} if direct else shapes


def num_params(params):
    """Total number of scalars: V*E + T*E*H + H + H*V + V (11,897 for 27, 3, 10, 200), + T*E*V with Wd."""
    return int(sum(p.size for p in params.values()))


def check_params(params):
    """Raise ValueError unless params is a dict of this model's parameters: no key that names none (a
    misspelt "wd" would be a model without direct connections, silently), none of the five missing,
    each a plain numpy array (a masked array's mask counts in some operations and not in others, so
    its gradient would be of another function than its loss), all float32 or all float64 (numpy would
    promote, and the gradients come back in another dtype than their parameters). forward() checks
    every call: under a microsecond."""
    if not isinstance(params, dict) or not params.keys() <= KNOWN_PARAMS:
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict of arrays {', '.join(PARAM_NAMES)} (and Wd), "
                             f"got {type(params).__name__}")
        unknown = sorted(map(str, params.keys() - KNOWN_PARAMS))
        verb = "is not a parameter" if len(unknown) == 1 else "are not parameters"
        raise ValueError(f"{', '.join(map(repr, unknown))} {verb} of this model ({', '.join(PARAM_NAMES + OPTIONAL_PARAMS)})")
    if len(params) - ("Wd" in params) != len(PARAM_NAMES):  # the keys are known ones: so one is missing
        missing = [k for k in PARAM_NAMES if k not in params]
        raise ValueError(f"params lacks {', '.join(missing)}: this model needs {', '.join(PARAM_NAMES)} (and Wd "
                         f"for direct connections)")
    dtype = params["C"].dtype if type(params["C"]) in PLAIN else np.dtype(object)  # which then fails below
    for p in params.values():  # dtype by identity, and by .char only when it differs: .name costs 3 microseconds
        if type(p) not in PLAIN or p.dtype is not dtype and p.dtype.char != dtype.char:
            break
    else:
        if dtype.char in ("f", "d"):  # float32 or float64, in either byte order
            return
    kinds = {k: _kind(a) for k, a in params.items()}
    raise ValueError("the parameters must all be float32 or all float64 numpy arrays, got "
                     + ", ".join(f"{k} {kind}" for k, kind in kinds.items())
                     + ("; a torch tensor t is t.detach().numpy()" if any(k.startswith("torch.") for k in kinds.values())
                        else ""))


def shape_problem(params):
    """What does not fit together in params' shapes, in one line, or None when they fit.

    The sizes are read by majority (V from C, W2 and b2; H from W1, b1 and W2; E from C; T*E from
    W1 and Wd), so the tensor that disagrees with the others is the one named, and one in
    torch.nn.Linear's layout, (outputs, inputs), is named as transposed. Call it on
    check_params's params (all present, all arrays).
    """
    C, W1 = params["C"], params["W1"]
    if C.ndim != 2 or W1.ndim != 2 or 0 in C.shape:
        return (f"C must be (V, E) and W1 (T*E, H), with V and E at least 1, got {C.shape} and "
                f"{W1.shape}")
    V = _most_common([C.shape[0], *_dims(params["b2"], 0), *_dims(params["W2"], 1)])
    E = C.shape[0] if C.shape[1] == V != C.shape[0] else C.shape[1]  # a transposed C still says its E
    H = _most_common([W1.shape[1], *_dims(params["b1"], 0), *_dims(params["W2"], 0), W1.shape[0]])
    TE = W1.shape[0] if W1.shape[1] == H else W1.shape[1]  # the other way round: the transposed W1
    TE = _most_common([TE, *_dims(params.get("Wd"), 0)])
    if TE % E:
        return (f"W1's rows must be T*E, whole multiples of C's E={E} (C is (V, E) = {C.shape}), "
                f"got W1 {W1.shape}")
    shapes = param_shapes(V, TE // E, E, H, direct="Wd" in params)
    odd = [k for k in shapes if params[k].shape != shapes[k]]
    if not odd:
        return None
    turned = [k for k in odd if params[k].shape[::-1] == shapes[k]]
    return ("the parameters do not fit together: "
            + ", ".join(f"{k} is {params[k].shape}, not {shapes[k]}" for k in odd)
            + f" (C {C.shape}, T={TE // E}, H={H})"
            + (f"; {', '.join(turned)} in torch.nn.Linear's layout, (outputs, inputs)? Ours are "
               f"(inputs, outputs): pass the transpose, .T" if turned else ""))


def _dims(a, axis):
    """[a.shape[axis]] when a is an array with that axis, else []: a size one tensor says the model has."""
    return [a.shape[axis]] if a is not None and a.ndim > axis else []


def _most_common(sizes):
    """The size most of `sizes` agree on; the first of them on a tie."""
    return max(sizes, key=sizes.count)


PLAIN = (np.ndarray, np.memmap)  # arrays whose every entry is what it says (np.load's mmap_mode gives a memmap)


def _kind(a):
    """An array's dtype by name, or what else it is: for check_params's message."""
    if type(a) in PLAIN:
        return a.dtype.name
    if isinstance(a, np.generic):
        return f"a {a.dtype.name} scalar"
    dtype = getattr(a, "dtype", None)  # a torch tensor's is a torch.dtype, which has no .name
    return (f"{type(a).__module__.split('.')[0]}.{type(a).__name__}".removeprefix("builtins.")
            + ("" if dtype is None else f" of {getattr(dtype, 'name', dtype)}"))
