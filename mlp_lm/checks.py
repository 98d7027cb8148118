"""Argument checks the library shares: what numpy (or Python) would take and answer wrongly.

numpy only, like layers.py, which uses them on every batch.
"""
import numpy as np


def is_real(value):
    """Whether value is a Python or numpy int or float, never a bool: True would pass for 1, a string
    or None would fail inside a comparison in Python's words, and numpy would make a Fraction's
    arithmetic with an array an array of Python objects, which its log and exp do not take."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_array(value):
    """Whether value is a numpy array the layers can take: an ndarray or a subclass (a memory-mapped
    one), but not an np.matrix (scipy.sparse's todense() gives one), whose * is a matrix product: where
    the layers multiply elementwise it would give a wrong answer, or numpy's "shapes not aligned"."""
    return isinstance(value, np.ndarray) and not isinstance(value, np.matrix)


def check_generator(rng):
    """TypeError unless rng is a numpy Generator: a seed given in its place failed at the first draw,
    and the legacy RandomState draws other numbers (and takes no dtype)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator, np.random.default_rng(seed), got {rng!r}")


def is_whole(value, at_least=1):
    """Whether value is a whole number (a Python or numpy integer, never a bool: True would pass for 1)
    of at least `at_least`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= at_least


def check_indices(idx, V, name, what="symbol indices"):
    """Raise ValueError unless the integer array idx holds symbol indices (or `what` else) in 0..V-1.

    numpy would read a negative index as counting from the end (-1: the last symbol) and a
    bool array as a mask, and give a wrong answer without a word.
    """
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer {what}, got {idx.dtype}")
    if idx.size:
        low, high = idx.flat[idx.argmin()], idx.flat[idx.argmax()]  # argmin/argmax: far less overhead than min/max
        if low < 0 or high >= V:
            raise ValueError(f"{name} holds {what} outside 0..{V - 1} (from {low} to {high})")


def check_chunk_size(chunk_size):
    """chunk_size itself if it is None or a whole number of rows >= 1; else ValueError (a range()
    with a step of 0 or less would evaluate no rows at all and report a loss of 0)."""
    if chunk_size is not None and not is_whole(chunk_size):
        raise ValueError(f"chunk_size must be a whole number of rows, at least 1, got {chunk_size!r}")
    return chunk_size


def checked_mask(mask, shape, dtype, wanted):
    """A dropout mask (or None) as the arithmetic reads it, or ValueError: of `shape` (`wanted` says
    which in the message), floating point, and cast to `dtype` when that is floating point."""
    if mask is None:
        return None
    if np.shape(mask) != shape:  # it would broadcast the output to another shape
        raise ValueError(f"the dropout mask is {np.shape(mask)}, not {wanted}")
    mask = np.asarray(mask)
    if mask.dtype.kind != "f":  # True/1 for a kept unit would leave it unscaled
        raise ValueError(f"a dropout mask holds 0 or 1/(1-p) in floating point (dropout_mask), got {mask.dtype}")
    # a float64 mask would turn a float32 network's gradients float64
    return mask.astype(dtype, copy=False) if np.dtype(dtype).kind == "f" else mask


def check_upstream(dout, shape, name):
    """ValueError unless the upstream gradient has its output's shape: numpy would broadcast a (B, 1),
    (1, H) or scalar one, or reshape one of the right size and another layout, into a wrong gradient.
    TypeError unless it is a numpy array (or, for a scalar output, a number)."""
    if is_array(dout):
        if dout.shape == shape:
            if dout.dtype.kind == "b":  # an embedding's dC would OR its rows' gradients, not add them
                raise TypeError(f"{name} holds booleans, not gradients; astype(float) makes numbers of them")
            return
    elif is_real(dout):  # a real number, of shape () (True is no gradient)
        if shape == ():  # the loss's upstream gradient, 1.0
            return
    else:
        raise not_arrays(**{name: dout})
    raise ValueError(f"{name} must have the forward output's shape {shape}, got {np.shape(dout)}")


def type_name(value):
    """A value's type for a message, by its library: list, torch.Tensor, numpy.ndarray."""
    return f"{type(value).__module__.split('.')[0]}.{type(value).__name__}".removeprefix("builtins.")


def torch_hint(values):
    """How to make numpy arrays of torch tensors, if any of `values` is one, else ""."""
    return "; a torch tensor t is t.detach().numpy()" if any(type_name(v).startswith("torch.") for v in values) else ""


def not_arrays(**named):
    """The TypeError for the arguments among `named` that are not numpy arrays: a list or a torch
    tensor would fail deep inside numpy or torch, or come back as another type."""
    odd = {k: v for k, v in named.items() if not is_array(v)}
    kinds = {k: "None" if v is None else f"a {type_name(v)}" for k, v in odd.items()}
    matrix = any(isinstance(v, np.matrix) for v in odd.values())
    hint = torch_hint(odd.values()) or "; np.asarray makes one" + (" (an np.matrix's * multiplies matrices)" if matrix else "")
    got = ", ".join(f"{t} for {k}" for k, t in kinds.items()) if len(kinds) > 1 else next(iter(kinds.values()))
    names = " and ".join([", ".join(list(odd)[:-1]), list(odd)[-1]] if len(odd) > 1 else odd)
    return TypeError(f"{names} must be {'a numpy array' if len(odd) == 1 else 'numpy arrays'}, got {got}{hint}")


def some(items, most=3):
    """The first `most` of `items` in order, and how many there are if there are more, so that a message
    naming them stays one line ("" for none)."""
    return ", ".join(map(str, sorted(items)[:most])) + (f" ({len(items)} in all)" if len(items) > most else "")
