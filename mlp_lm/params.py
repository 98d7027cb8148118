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
import math

import numpy as np

from .checks import is_whole, torch_hint, type_name

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


def param_count(V, T, E, H, direct=False):
    """How many scalars the parameters of these sizes hold (param_shapes): num_params without the arrays."""
    return sum(math.prod(shape) for shape in param_shapes(V, T, E, H, direct).values())


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
    raise ValueError("the parameters must all be float32 or all float64 numpy arrays, got "
                     + ", ".join(f"{k} {_kind(a)}" for k, a in params.items()) + torch_hint(params.values()))


def shape_problem(params, T=None):
    """What does not fit together in params' shapes, in one line, or None when they fit.

    The sizes (V, T, E, H) are the ones that fit the most tensors, so the tensor that disagrees with
    the others is the one named, whichever it is; a weight in torch.nn.Linear's layout, (outputs,
    inputs), is named as transposed. T, the contexts' length when there are contexts, breaks ties.
    Call it on check_params's params (all present, all arrays).
    """
    C, W1, given = params["C"], params["W1"], T
    if C.ndim != 2 or 0 in C.shape:
        return f"C must be (V, E), with V and E at least 1, got {C.shape}"
    direct = "Wd" in params
    sizes = (C.shape[0], W1.shape[0] // C.shape[1], C.shape[1], W1.shape[-1]) if W1.ndim else None
    if sizes and W1.shape[0] % C.shape[1] == 0 and _misfits(params, sizes, direct) == []:
        return None  # the reading every training step takes: C's (V, E), W1's (T*E, H)
    # Every size each tensor could be saying, the usual reading first (it wins a tie)
    dims = {k: a.shape for k, a in params.items()}
    Vs = _unique([dims["C"][0], *dims["b2"], *dims["W2"][::-1], *dims.get("Wd", ())[1:]])
    Hs = _unique([*dims["W1"][::-1], *dims["b1"], *dims["W2"]])
    TEs = _unique([*dims["W1"], *dims.get("Wd", ())[:1]])
    Es = _unique([*dims["C"][::-1], *(TE // given for TE in TEs if given and TE % given == 0)])  # W1's rows, X's T
    TEs = _unique([*TEs, *(given * E for E in Es if given)])
    readings = [(V, TE // E, E, H) for E in Es for TE in TEs if TE >= E and TE % E == 0 for V in Vs for H in Hs]
    if not readings:
        return (f"W1's rows must be T*E, whole multiples of C's E={C.shape[1]} (C is (V, E) = {C.shape}), "
                f"got W1 {W1.shape}")
    V, T, E, H = sizes = min(readings, key=lambda r: _cost(params, r, direct) + (0.25 if r[1] != given else 0))
    shapes = param_shapes(*sizes, direct=direct)
    odd = _misfits(params, sizes, direct)
    turned = [k for k in odd if params[k].shape[::-1] == shapes[k]]
    linear = [k for k in turned if k != "C"]  # nn.Embedding keeps C as we do, (V, E)
    return ("the parameters do not fit together: "
            + ", ".join(f"{k} is {params[k].shape}, not {shapes[k]}" for k in odd)
            + f" (V={V}, T={T}, E={E}, H={H}, the sizes the other tensors agree on)"  # min: the first of the best
            + (f"; {', '.join(linear)} in torch.nn.Linear's layout, (outputs, inputs)? Ours are "
               f"(inputs, outputs): pass the transpose, .T" if linear else "")
            + ("; C is transposed: it is (V, E), one row a symbol" if "C" in turned else ""))


def _cost(params, sizes, direct):
    """How badly these sizes fit: a tensor of another shape costs 1, a transposed one (all there, in the
    other layout) a half."""
    shapes = param_shapes(*sizes, direct=direct)
    return sum(1 if params[k].shape[::-1] != shapes[k] else 0.5 for k in _misfits(params, sizes, direct))


def _misfits(params, sizes, direct):
    """The names of the tensors whose shapes are not the ones these sizes (V, T, E, H) give."""
    return [k for k, shape in param_shapes(*sizes, direct=direct).items() if params[k].shape != shape]


def _unique(sizes):
    """sizes without repeats, in their order, and without 0 (no size of this model is 0)."""
    return list(dict.fromkeys(n for n in sizes if n))


PLAIN = (np.ndarray, np.memmap)  # arrays whose every entry is what it says (np.load's mmap_mode gives a memmap)


def _kind(a):
    """An array's dtype by name, or what else it is: for check_params's message."""
    if type(a) in PLAIN:
        return a.dtype.name
    if isinstance(a, np.generic):
        return f"a {a.dtype.name} scalar"
    dtype = getattr(a, "dtype", None)  # a torch tensor's is a torch.dtype, which has no .name
    return type_name(a) + ("" if dtype is None else f" of {getattr(dtype, 'name', dtype)}")
