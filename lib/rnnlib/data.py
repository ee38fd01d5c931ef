"""Data for the course: one-hot codes, a character vocabulary, synthetic
long-memory tasks and the batching that truncated BPTT needs.

Nothing is downloaded; every random task takes a seeded ``np.random.Generator``
so a chapter gives the same numbers on every run.
"""

import numpy as np


def one_hot(indices, V, dtype=np.float64):
    """One-hot codes: ``out[..., k] = 1`` where ``indices[...] == k``.

    Parameters
    ----------
    indices : integer array of any shape (...), values in [0, V)
    V : int, the number of classes (vocabulary size)
    dtype : float dtype of the result

    Returns
    -------
    (..., V) array of 0s and 1s

    Taught in: Chapter 1 (Feedforward vs recurrent).
    """
    indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices has dtype {indices.dtype}; expected integers")
    if not (isinstance(V, (int, np.integer)) and V > 0):
        raise ValueError(f"V is {V!r}; expected a positive integer")
    if indices.size and (indices.min() < 0 or indices.max() >= V):
        bad = indices.min() if indices.min() < 0 else indices.max()
        raise ValueError(f"indices contains {bad}, outside [0, V) = [0, {V})")
    return (indices[..., None] == np.arange(V)).astype(dtype)  # (..., V)


class CharVocab:
    """Characters <-> integer ids, built from a text.

    ``vocab = CharVocab(text)``; ``vocab.encode("hello")`` gives an int64 array,
    ``vocab.decode(ids)`` a string, ``vocab.size`` (also ``len(vocab)``) is V.
    Ids follow the sorted order of the characters, so the same text always
    gives the same vocabulary.

    Taught in: Chapter 3 (Backpropagation through time).
    """

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.char_to_id = {ch: i for i, ch in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(text)

    @property
    def size(self):
        return len(self.chars)

    def __len__(self):
        return self.size

    def encode(self, text):
        unknown = sorted(set(text) - self.char_to_id.keys())
        if unknown:
            raise ValueError(f"characters {unknown} are not in the vocabulary")
        return np.array([self.char_to_id[ch] for ch in text], dtype=np.int64)

    def decode(self, ids):
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in [0, V) = [0, {self.size})")
        return "".join(self.chars[i] for i in ids.ravel())

    def __repr__(self):
        return f"CharVocab(size={self.size}, chars={''.join(self.chars)!r})"


def adding_problem(N, T, rng):
    """The adding problem (Hochreiter & Schmidhuber, 1997).

    Channel 0 holds random values in [0, 1); channel 1 marks exactly two
    steps, one in the first half and one in the second half of the sequence
    (as in Le et al., 2015). The target is the sum of the two marked values, read
    after the last step, so the network must remember a value over up to T - 1
    steps (from step 0 to step T - 1).

    Returns
    -------
    x : (N, T, 2) float64 array
    y : (N,) float64 array

    Taught in: Chapter 4 (Vanishing and exploding gradients).
    """
    if T < 2:
        raise ValueError(f"T is {T}; the adding problem needs T >= 2")
    values = rng.uniform(0.0, 1.0, size=(N, T))  # (N, T)
    first = rng.integers(0, T // 2, size=N)  # (N,)
    second = rng.integers(T // 2, T, size=N)  # (N,)
    markers = np.zeros((N, T))
    markers[np.arange(N), first] = 1.0
    markers[np.arange(N), second] = 1.0
    x = np.stack([values, markers], axis=-1)  # (N, T, 2)
    y = values[np.arange(N), first] + values[np.arange(N), second]  # (N,)
    return x, y


def copy_task(N, T_seq, T_delay, V, rng):
    """The copy memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Symbols: data symbols 0 .. V-3, ``blank = V-2``, ``go = V-1``. Each
    sequence has length ``L = T_seq + T_delay + T_seq``::

        input : s_1 .. s_Tseq | blank * (T_delay - 1), go | blank * T_seq
        target: blank * (T_seq + T_delay)                  | s_1 .. s_Tseq

    so after the go marker the network must reproduce the first T_seq symbols.

    Returns
    -------
    x : (N, L, V) float64 one-hot inputs
    y : (N, L) int64 target ids

    Taught in: Chapter 4 (Vanishing and exploding gradients).
    """
    if V < 3 or T_delay < 1 or T_seq < 1:
        raise ValueError("copy_task needs V >= 3, T_delay >= 1 and T_seq >= 1")
    blank, go = V - 2, V - 1
    L = T_seq + T_delay + T_seq
    symbols = rng.integers(0, V - 2, size=(N, T_seq))  # (N, T_seq)
    x_ids = np.full((N, L), blank, dtype=np.int64)
    x_ids[:, :T_seq] = symbols
    x_ids[:, T_seq + T_delay - 1] = go
    y = np.full((N, L), blank, dtype=np.int64)
    y[:, T_seq + T_delay :] = symbols
    return one_hot(x_ids, V), y


def remember_first(N, T, V, rng):
    """Classify a sequence by its first symbol: the simplest long-memory task.

    Returns
    -------
    x : (N, T, V) float64 one-hot random symbols
    y : (N,) int64, the first symbol of each sequence

    Taught in: Chapter 1 (Feedforward vs recurrent).
    """
    ids = rng.integers(0, V, size=(N, T))  # (N, T)
    return one_hot(ids, V), ids[:, 0].astype(np.int64)


def tbptt_batches(ids, batch_size, num_steps):
    """Windows for truncated BPTT, contiguous from one batch to the next.

    The stream is cut into ``batch_size`` equal rows (the tail that does not
    fit is dropped); window k holds columns ``k*num_steps .. (k+1)*num_steps``
    of every row. Row n of window k+1 continues row n of window k, so the final
    hidden state of one window is the right initial state for the next.

    Yields
    ------
    x_ids : (N, num_steps) int array, N = batch_size
    y_ids : (N, num_steps) int array, the next ids (x shifted by one)

    Taught in: Chapter 3 (Backpropagation through time).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids has shape {ids.shape}; expected a 1-D stream of ids")
    row_len = len(ids) // batch_size
    if row_len < num_steps + 1:
        raise ValueError(
            f"{len(ids)} ids give rows of {row_len}; need at least num_steps + 1 "
            f"= {num_steps + 1} per row for batch_size = {batch_size}"
        )
    rows = ids[: batch_size * row_len].reshape(batch_size, row_len)  # (N, L)
    for start in range(0, row_len - num_steps, num_steps):
        yield (rows[:, start : start + num_steps].copy(),
               rows[:, start + 1 : start + num_steps + 1].copy())


def sliding_windows(series, window, horizon=1):
    """Supervised pairs from a time series: ``window`` steps in, ``horizon`` out.

    Parameters
    ----------
    series : (T,) or (T, D) array
    window, horizon : int

    Returns
    -------
    x : (M, window, D) array, with D = 1 for a 1-D series,
        M = T - window - horizon + 1
    y : (M, horizon) for a 1-D series, else (M, horizon, D):
        the values right after each window

    Taught in: Chapter 1 (Feedforward vs recurrent).
    """
    series = np.asarray(series)
    if series.ndim not in (1, 2):
        raise ValueError(f"series has shape {series.shape}; expected (T,) or (T, D)")
    s = series[:, None] if series.ndim == 1 else series  # (T, D)
    M = len(s) - window - horizon + 1
    if window < 1 or horizon < 1 or M < 1:
        raise ValueError(
            f"a series of length {len(s)} has no window of {window} + {horizon} steps"
        )
    x = np.stack([s[m : m + window] for m in range(M)])  # (M, window, D)
    y = np.stack([s[m + window : m + window + horizon] for m in range(M)])
    return x, (y[..., 0] if series.ndim == 1 else y)
