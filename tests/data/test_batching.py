"""bptt_batches against an independent construction of the PTB reference streams."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_gated.data import bptt_batches, num_batches


def reference_windows(ids, batch_size, seq_len):
    """Windows built element by element from the definition (no reshape):

    row b is the contiguous slice ids[b*L:(b+1)*L], L = len(ids) // batch_size; window k
    covers steps k*T .. k*T+T-1 of each row, and its targets are the next step in the row.
    """
    steps = len(ids) // batch_size
    rows = [list(ids[b * steps : (b + 1) * steps]) for b in range(batch_size)]
    windows = []
    k = 0
    while (k + 1) * seq_len + 1 <= steps:  # the last target must exist in the row
        start = k * seq_len
        inputs = [[rows[b][start + t] for t in range(seq_len)] for b in range(batch_size)]
        targets = [[rows[b][start + t + 1] for t in range(seq_len)] for b in range(batch_size)]
        windows.append((inputs, targets))
        k += 1
    return windows


def as_lists(dataset):
    return [(x.numpy().tolist(), y.numpy().tolist()) for x, y in dataset]


def test_small_example_by_hand():
    batches = as_lists(bptt_batches(np.arange(20), batch_size=2, seq_len=3))
    # rows: 0..9 and 10..19; windows of 3 with one token to spare for the last target.
    assert batches == [
        ([[0, 1, 2], [10, 11, 12]], [[1, 2, 3], [11, 12, 13]]),
        ([[3, 4, 5], [13, 14, 15]], [[4, 5, 6], [14, 15, 16]]),
        ([[6, 7, 8], [16, 17, 18]], [[7, 8, 9], [17, 18, 19]]),
    ]
    assert num_batches(20, 2, 3) == 3


def test_dtype_shape_and_cardinality():
    dataset = bptt_batches(list(range(1000)), batch_size=4, seq_len=7)
    assert dataset.cardinality().numpy() == num_batches(1000, 4, 7) == (250 - 1) // 7
    x, y = next(iter(dataset))
    assert x.dtype == y.dtype == "int32"
    assert x.shape == y.shape == (4, 7)


@settings(max_examples=50, deadline=None)
@given(
    length=st.integers(0, 400),
    batch_size=st.integers(1, 8),
    seq_len=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_targets_are_inputs_shifted_across_windows(length, batch_size, seq_len, seed):
    ids = np.random.default_rng(seed).permutation(length)  # distinct ids: a shift is visible
    expected = reference_windows(ids, batch_size, seq_len)
    assert num_batches(length, batch_size, seq_len) == len(expected)
    if not expected:
        with pytest.raises(ValueError, match=f"{length} tokens"):
            bptt_batches(ids, batch_size, seq_len)
        return
    batches = as_lists(bptt_batches(ids, batch_size, seq_len))
    assert batches == expected
    for (_, targets), (next_inputs, _) in zip(batches, batches[1:]):
        assert [row[-1] for row in targets] == [row[0] for row in next_inputs]


@pytest.mark.parametrize("argument", ["batch_size", "seq_len"])
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_sizes_are_named(argument, value):
    sizes = {"batch_size": 2, "seq_len": 3, argument: value}
    with pytest.raises(ValueError, match=argument):
        bptt_batches(np.arange(100), **sizes)
    with pytest.raises(ValueError, match=argument):
        num_batches(100, **sizes)


def test_short_stream_says_how_many_tokens_are_needed():
    with pytest.raises(ValueError, match=r"7 tokens.*at least 8 tokens"):
        bptt_batches(np.arange(7), batch_size=2, seq_len=3)
    assert len(as_lists(bptt_batches(np.arange(8), batch_size=2, seq_len=3))) == 1


def test_rejects_non_integer_or_nested_ids():
    with pytest.raises(ValueError, match="1-D integer"):
        bptt_batches(np.zeros((4, 4), dtype=np.int32), 1, 1)
    with pytest.raises(ValueError, match="1-D integer"):
        bptt_batches(np.linspace(0, 1, 10), 1, 1)
