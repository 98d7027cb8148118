"""Argument checks the library shares: what numpy (or Python) would take and answer wrongly.

numpy only, like layers.py, which uses them on every batch.
"""
import numpy as np


def is_whole(value, at_least=1):
    """Whether value is a whole number (a Python or numpy integer, never a bool: True would pass for 1)
    of at least `at_least`."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= at_least


def check_indices(idx, V, name):
    """Raise ValueError unless the integer array idx holds symbol indices in 0..V-1.

    numpy would read a negative index as counting from the end (-1: the last symbol) and a
    bool array as a mask, and give a wrong answer without a word.
    """
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer symbol indices, got {idx.dtype}")
    if idx.size:
        low, high = idx.flat[idx.argmin()], idx.flat[idx.argmax()]  # argmin/argmax: far less overhead than min/max
        if low < 0 or high >= V:
            raise ValueError(f"{name} holds symbol indices outside 0..{V - 1} (from {low} to {high})")


def check_chunk_size(chunk_size):
    """chunk_size itself if it is None or a whole number of rows >= 1; else ValueError (a range()
    with a step of 0 or less would evaluate no rows at all and report a loss of 0)."""
    if chunk_size is not None and not is_whole(chunk_size):
        raise ValueError(f"chunk_size must be a whole number of rows, at least 1, got {chunk_size!r}")
    return chunk_size
