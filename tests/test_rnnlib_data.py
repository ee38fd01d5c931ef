"""one_hot, CharVocab, the synthetic tasks and the batching helpers."""

import numpy as np
import pytest

from rnnlib import data


def test_one_hot_by_hand():
    out = data.one_hot(np.array([[2, 0], [1, 1]]), 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.float64
    np.testing.assert_array_equal(out[0, 0], [0, 0, 1])
    np.testing.assert_array_equal(out[1].sum(axis=-1), [1, 1])
    assert data.one_hot([1], 2, dtype=np.float32).dtype == np.float32


def test_one_hot_rejects_bad_input():
    with pytest.raises(ValueError, match=r"indices contains 5, outside \[0, V\) = "
                                         r"\[0, 5\)"):
        data.one_hot(np.array([0, 5]), 5)
    with pytest.raises(ValueError, match="indices contains -1"):
        data.one_hot(np.array([-1]), 5)
    with pytest.raises(ValueError, match="indices has dtype float64"):
        data.one_hot(np.array([0.0]), 5)
    with pytest.raises(ValueError, match="V is 0"):
        data.one_hot(np.array([0]), 0)


def test_char_vocab_round_trip():
    vocab = data.CharVocab("hello world")
    assert vocab.size == len(vocab) == len(set("hello world"))
    ids = vocab.encode("low")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "low"
    assert vocab.chars == sorted(vocab.chars)  # deterministic ids
    with pytest.raises(ValueError, match=r"\['z'\] are not in the vocabulary"):
        vocab.encode("zoo")
