"""What the optimisers check before any tensor moves: their hyperparameters, the names weight decay
acts on, and each step's parameters, gradients and learning rate (optim.py moves the tensors)."""
import math
import numbers

import numpy as np

from .params import DECAYED, KNOWN_PARAMS


def check_hyperparameters(**values):
    """Raise ValueError for a hyperparameter outside its range: weight_decay finite and >= 0, eps
    finite and > 0 (at 0 a coordinate whose gradients were all 0 so far gets 0/0), beta1, beta2
    and decay in [0, 1) (config.config_problem checks a whole run's; these are for the building
    blocks used on their own)."""
    ranges = {"weight_decay": ("[0, inf)", lambda v: 0 <= v < math.inf),
              "eps": ("(0, inf)", lambda v: 0 < v < math.inf)}
    for name, value in values.items():
        shown, ok = ranges.get(name, ("[0, 1)", lambda v: 0 <= v < 1))
        if isinstance(value, bool) or not ok(value):  # NaN fails every range
            raise ValueError(f"{name} is {value!r}, outside its range {shown}")


def decayed_names(decayed):
    """decayed as a frozenset of tensor names, or None for this model's own (params.DECAYED); ValueError for
    anything else (a single string would be read as its letters)."""
    if decayed is None:
        return None
    names = tuple(decayed) if not isinstance(decayed, (str, bytes)) and hasattr(decayed, "__iter__") else None
    if names is None or not all(isinstance(k, str) for k in names):
        raise ValueError(f"decayed must be a collection of tensor names, such as ('W1', 'W2'), got {decayed!r}")
    return frozenset(names)


def decayed_in(params, weight_decay, decayed):
    """The names in params that weight decay acts on (none without decay): those in decayed when it is
    given, else by their role in this model (DECAYED). A name this model does not have, with no
    decayed given, is a ValueError, raised before any tensor moves: decaying by names, another
    network's "weight" would otherwise get no decay at all, and no word of it."""
    if decayed is not None:  # (checked without decay too: the names would be wrong the day it is turned on)
        missing = sorted(decayed - params.keys())
        if missing:  # a misspelt name would decay nothing, and say nothing
            raise ValueError(f"decayed holds {', '.join(map(repr, missing))}, which is not among the parameters "
                             f"({', '.join(map(repr, params))})")
    if not weight_decay:
        return frozenset()
    if decayed is not None:
        return decayed
    unknown = [k for k in params if k not in KNOWN_PARAMS]
    if unknown:
        raise ValueError(f"weight decay acts on this model's tensors by name ({', '.join(DECAYED)}; never the "
                         f"biases), and {', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} none of "
                         f"them: pass decayed=(the names to decay)")
    return frozenset(DECAYED) & params.keys()


def check_step(params, grads, lr):
    """Return lr, a float. Raise ValueError, before any tensor moves, unless lr is a number in [0, inf) and there
    are parameters, each a writable floating-point numpy array (changed in place: a list would be left as it
    was) with a gradient, an array of its own shape and dtype. Numpy would broadcast a (H,) gradient over
    every row of a (T*E, H) W1 and say nothing (and AdamW's update, made a block of rows at a time, would
    take its pieces for rows)."""
    if not isinstance(lr, numbers.Real) or isinstance(lr, bool):  # True would step at a rate of 1
        raise ValueError(f"the learning rate must be a number, got {type(lr).__name__} {lr!r}")
    if not isinstance(lr, (float, np.floating)):  # an int or a Fraction, which numpy's arithmetic would meet half-way
        try:  # through a step (an AdamW with its moments moved); a float or numpy's is used as it is, its rounding too
            lr = float(lr)
        except OverflowError:  # an int past float's range
            lr = math.inf
    if not 0 <= lr < math.inf:  # NaN fails too
        raise ValueError(f"the learning rate is {lr!r}, outside its range [0, inf)")
    if not params:  # AdamW would count it as its first step
        raise ValueError("there are no parameters to step")
    for k, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f" or not p.flags.writeable:
            what = (type(p).__name__ if not isinstance(p, np.ndarray) else f"a {p.dtype} array"
                    if p.dtype.kind != "f" else "a read-only array")
            raise ValueError(f"the parameter {k!r} must be a writable floating-point numpy array, changed in "
                             f"place, got {what}")
        g = grads.get(k)
        shape = getattr(g, "shape", None)
        if shape != p.shape:
            raise ValueError(f"the gradient of {k!r} must be an array of its shape {p.shape}, got "
                             f"{'none' if k not in grads else type(g).__name__ if shape is None else shape}")
        # AdamW's intermediate values are rounded to p's dtype; its byte order may differ (same_number_type)
        if getattr(g, "dtype", None) != p.dtype and not same_number_type(g.dtype, p.dtype):
            raise ValueError(f"the gradient of {k!r} must be {p.dtype}, as the parameter is, got {g.dtype}")
    return lr


def same_number_type(a, b):
    """Whether dtypes a and b hold the same numbers, in either byte order: parameters read from a file
    written on a big-endian machine (>f4) get their gradients in this machine's order (float32)."""
    return isinstance(a, np.dtype) and a.newbyteorder("=") == b.newbyteorder("=")
