"""The count models' tables: every context of the training set as an integer id (counting.py).

Shapes: N training examples, B contexts asked about, V symbols; a context is the last
n - 1 symbols before a target, padded at the start with the boundary 0.

Contexts become integers without overflow. The id of the length-j context (the last j
symbols of a row) is the rank of the key  id_{j-1} * V + (the j-th symbol from the end)
among the keys seen in training, with id_0 = 0 for the empty context. Keys stay below
N * V whatever n is; the obvious sum of symbol * V**position would overflow int64 for
V = 20,000 at n = 6. A key splits back into its halves: key // V is the id of the
context without its leftmost symbol, key % V is that leftmost symbol. An n-gram of a
length-j context with id h is the key h * V + w. Lookups search the sorted keys.
"""
import numpy as np


def find(table, keys, valid):
    """Position of each key (B,) in the sorted table, -1 where absent or not valid."""
    if len(table) == 0:  # tiny data can leave an order with no n-grams
        return np.full(len(keys), -1)
    pos = np.searchsorted(table, keys).clip(max=len(table) - 1)
    return np.where(valid & (table[pos] == keys), pos, -1)


def entries(start, ids):
    """For contexts ids (R,): the table positions of all their n-grams, and which row each is for.

    A table sorted by key keeps each context's n-grams together: context h owns
    positions start[h] .. start[h+1] - 1.
    """
    lo, lens = start[ids], start[ids + 1] - start[ids]  # (R,)
    row = np.repeat(np.arange(len(ids)), lens)  # (M,)
    pos = np.arange(lens.sum()) + np.repeat(lo - (np.cumsum(lens) - lens), lens)  # (M,) ranges laid end to end
    return row, pos


def starts(ctx, num_contexts):
    """start[h] (K+1,), K = num_contexts: where context h's n-grams begin in a table sorted by key."""
    return np.concatenate([[0], np.cumsum(np.bincount(ctx, minlength=num_contexts))])


class Contexts:
    """Ids of the contexts seen in training, one table of sorted keys per length j = 0 .. n-1."""

    def __init__(self, X, V):  # X (N, n-1)
        self.V = V
        self.keys = [np.zeros(1, dtype=np.int64)]  # length 0: the empty context, id 0
        self.train_ids = [np.zeros(len(X), dtype=np.int64)]  # (N,) per length
        for j in range(1, X.shape[1] + 1):  # a loop over the context lengths
            keys, ids = np.unique(self.train_ids[-1] * V + X[:, -j], return_inverse=True)
            self.keys.append(keys)
            self.train_ids.append(ids.reshape(-1))
        self.rest = [None] + [keys // V for keys in self.keys[1:]]  # id of the context without its leftmost symbol
        self.first = [None] + [keys % V for keys in self.keys[1:]]  # its leftmost symbol

    def leading_boundaries(self, j, h):
        """How many boundaries (0, 1 or 2 meaning "2 or more") the length-j contexts h (M,) start with."""
        if j == 0:
            return np.zeros(len(h), dtype=np.int64)
        one = self.first[j][h] == 0
        if j == 1:
            return one.astype(np.int64)
        # A boundary is only ever padding, so h[1] = 0 implies h[0] = 0.
        return one.astype(np.int64) + (self.first[j - 1][self.rest[j][h]] == 0)

    def ids(self, X):
        """ids[j] (B,): each row's length-j context, -1 where training never saw it."""
        ids = [np.zeros(len(X), dtype=np.int64)]
        for j in range(1, len(self.keys)):  # a context's suffix was seen whenever the context was
            ids.append(find(self.keys[j], ids[-1] * self.V + X[:, -j], ids[-1] >= 0))
        return ids
