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


def test_adding_problem():
    x, y = data.adding_problem(50, 12, np.random.default_rng(0))
    assert x.shape == (50, 12, 2) and y.shape == (50,)
    markers = x[..., 1]
    assert np.all(markers.sum(axis=1) == 2) and np.isin(markers, (0, 1)).all()
    assert np.all(markers[:, :6].sum(axis=1) == 1)  # one in each half
    for n in range(50):  # the target, recomputed the slow way
        marked = [x[n, t, 0] for t in range(12) if x[n, t, 1] == 1]
        assert y[n] == sum(marked)
    x2, y2 = data.adding_problem(50, 12, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, data.adding_problem(50, 12,
                                                     np.random.default_rng(1))[0])


def test_copy_task_layout():
    T_seq, T_delay, V = 4, 3, 6
    x, y = data.copy_task(8, T_seq, T_delay, V, np.random.default_rng(0))
    L = 2 * T_seq + T_delay
    assert x.shape == (8, L, V) and y.shape == (8, L) and y.dtype == np.int64
    ids = x.argmax(axis=-1)
    assert np.all(x.sum(axis=-1) == 1)
    blank, go = V - 2, V - 1
    assert np.all(ids[:, :T_seq] < V - 2)  # data symbols only
    assert np.all(ids[:, T_seq : T_seq + T_delay - 1] == blank)
    assert np.all(ids[:, T_seq + T_delay - 1] == go)
    assert np.all(ids[:, T_seq + T_delay :] == blank)
    assert np.all(y[:, : T_seq + T_delay] == blank)
    np.testing.assert_array_equal(y[:, T_seq + T_delay :], ids[:, :T_seq])
    x2, _ = data.copy_task(8, T_seq, T_delay, V, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)


def test_remember_first():
    x, y = data.remember_first(10, 5, 4, np.random.default_rng(0))
    assert x.shape == (10, 5, 4) and y.shape == (10,)
    np.testing.assert_array_equal(x[:, 0].argmax(axis=-1), y)
    x2, y2 = data.remember_first(10, 5, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(y, y2)


def test_tbptt_windows_are_contiguous_across_batches():
    ids = np.arange(103)
    batches = list(data.tbptt_batches(ids, batch_size=4, num_steps=6))
    # Rows of 25 ids: windows start at 0, 6, 12, 18 (each needs one id more).
    assert len(batches) == 4
    for x_ids, y_ids in batches:
        assert x_ids.shape == y_ids.shape == (4, 6)
        np.testing.assert_array_equal(y_ids, x_ids + 1)  # next-id targets
    rows = np.concatenate([x for x, _ in batches], axis=1)  # (4, 24)
    for n in range(4):  # row n continues itself from one batch to the next
        np.testing.assert_array_equal(rows[n], np.arange(25 * n, 25 * n + 24))
    with pytest.raises(ValueError, match="need at least num_steps"):
        list(data.tbptt_batches(np.arange(10), batch_size=4, num_steps=6))


def test_sliding_windows():
    series = np.arange(10.0)
    x, y = data.sliding_windows(series, window=3, horizon=2)
    assert x.shape == (6, 3, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[2, :, 0], [2, 3, 4])
    np.testing.assert_array_equal(y[2], [5, 6])
    x2, y2 = data.sliding_windows(np.stack([series, -series], axis=1), window=4)
    assert x2.shape == (6, 4, 2) and y2.shape == (6, 1, 2)
    np.testing.assert_array_equal(y2[-1, 0], [9, -9])
    x[0, 0, 0] = 99  # copies, not views of the series
    assert series[0] == 0
    with pytest.raises(ValueError, match="no window of 9 \\+ 2 steps"):
        data.sliding_windows(series, window=9, horizon=2)


def test_tbptt_windows_counted_by_hand():
    """24 ids in one row: windows at 0, 6 and 12; one at 18 would need id 24."""
    batches = list(data.tbptt_batches(np.arange(24), batch_size=1, num_steps=6))
    assert len(batches) == 3
    for k, (x_ids, y_ids) in enumerate(batches):
        assert x_ids.shape == y_ids.shape == (1, 6)
        np.testing.assert_array_equal(x_ids[0], np.arange(6 * k, 6 * k + 6))
        np.testing.assert_array_equal(y_ids[0], np.arange(6 * k + 1, 6 * k + 7))


def test_tbptt_needs_rows_of_num_steps_plus_one():
    """A row of num_steps ids has no next id for its last step: refused."""
    with pytest.raises(ValueError, match=r"6 ids give rows of 6; need at least "
                                         r"num_steps \+ 1 = 7"):
        list(data.tbptt_batches(np.arange(6), batch_size=1, num_steps=6))
    # One id more is exactly one window: x = 0..5, y = 1..6.
    (x_ids, y_ids), = data.tbptt_batches(np.arange(7), batch_size=1, num_steps=6)
    np.testing.assert_array_equal(x_ids, [np.arange(6)])
    np.testing.assert_array_equal(y_ids, [np.arange(1, 7)])


def test_decode_refuses_an_id_equal_to_the_vocabulary_size():
    """Ids run from 0 to V - 1; V itself is one past the end."""
    vocab = data.CharVocab("abc")
    assert vocab.decode([2, 0]) == "ca"
    with pytest.raises(ValueError, match=r"ids must lie in \[0, V\) = \[0, 3\)"):
        vocab.decode([0, 3])


def test_sliding_windows_refuses_an_empty_window_or_horizon():
    """window = 0 or horizon = 0 would give empty inputs or targets."""
    with pytest.raises(ValueError, match=r"no window of 0 \+ 1 steps"):
        data.sliding_windows(np.arange(10.0), window=0)
    with pytest.raises(ValueError, match=r"no window of 3 \+ 0 steps"):
        data.sliding_windows(np.arange(10.0), window=3, horizon=0)


def test_adding_problem_needs_two_steps():
    """One step cannot hold a marker in each half; the message names T."""
    with pytest.raises(ValueError, match="T is 1; the adding problem needs T >= 2"):
        data.adding_problem(3, 1, np.random.default_rng(0))
    x, _ = data.adding_problem(3, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(x[..., 1], np.ones((3, 2)))  # both steps marked
