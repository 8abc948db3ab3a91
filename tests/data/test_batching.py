"""BPTT batches against an independent construction of the PTB reference streams; AWD-LSTM's
variable window lengths against their rule and distribution."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_gated.data import bptt_batches, num_batches
from keras_gated.data.batching import variable_bptt_batches, window_lengths


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


# Variable-length windows (AWD-LSTM): lengths drawn by `window_lengths`, tiling every row.

FRACTION_SIGMAS = 4  # a binomial fraction's allowed distance from p, in standard errors


def test_variable_windows_cover_every_token_exactly_once():
    batch_size, seq_len = 3, 10
    ids = np.random.default_rng(1).permutation(1000)  # distinct ids: each token identifiable
    steps = len(ids) // batch_size  # L
    lengths = window_lengths(steps - 1, seq_len, np.random.default_rng(2))
    assert sum(lengths) == steps - 1
    batches = as_lists(variable_bptt_batches(ids, batch_size, lengths))
    assert [len(x[0]) for x, _ in batches] == lengths
    for b in range(batch_size):
        row = ids[b * steps : (b + 1) * steps].tolist()
        assert sum((x[b] for x, _ in batches), []) == row[:-1]
        assert sum((y[b] for _, y in batches), []) == row[1:]
    inputs = [t for x, _ in batches for r in x for t in r]
    last_targets = [r[-1] for r in batches[-1][1]]
    covered = sorted(inputs + last_targets)
    assert covered == sorted(ids[: batch_size * steps].tolist())  # each once, none dropped


def test_variable_windows_by_hand_and_their_errors():
    batches = as_lists(variable_bptt_batches(np.arange(20), batch_size=2, lengths=[4, 2, 3]))
    assert batches == [
        ([[0, 1, 2, 3], [10, 11, 12, 13]], [[1, 2, 3, 4], [11, 12, 13, 14]]),
        ([[4, 5], [14, 15]], [[5, 6], [15, 16]]),
        ([[6, 7, 8], [16, 17, 18]], [[7, 8, 9], [17, 18, 19]]),
    ]
    with pytest.raises(ValueError, match="at least 22 tokens"):
        variable_bptt_batches(np.arange(20), batch_size=2, lengths=[5, 5])
    with pytest.raises(ValueError, match="positive"):
        variable_bptt_batches(np.arange(20), batch_size=2, lengths=[3, 0])


class RecordingRng:
    """A generator stand-in returning fixed draws and recording the normal's arguments."""

    def __init__(self, uniform, normal):
        self.uniform, self.normal_value, self.calls = uniform, normal, []

    def random(self):
        return self.uniform

    def normal(self, mean, std):
        self.calls.append((mean, std))
        return self.normal_value


@pytest.mark.parametrize("uniform,mean", [(0.0, 40), (0.949, 40), (0.95, 20), (0.99, 20)])
def test_window_mean_is_seq_len_with_probability_0_95_else_half(uniform, mean):
    rng = RecordingRng(uniform, normal=31.4)
    assert window_lengths(100, 40, rng) == [31, 31, 31, 7]  # rounded; the last what remains
    assert rng.calls == [(mean, 5.0)] * 4


@pytest.mark.parametrize(
    "drawn,length", [(-50.0, 5), (4.4, 5), (4.6, 5), (5.5, 6), (59.6, 60), (60.4, 60), (1e9, 60)]
)
def test_window_lengths_are_clipped_to_5_and_seq_len_plus_20(drawn, length):
    lengths = window_lengths(10 * length + 1, 40, RecordingRng(0.0, drawn))
    assert lengths == [length] * 10 + [1]


def test_window_lengths_follow_the_distribution():
    """Seeded draws: 5% have mean T/2, the rest mean T; both spread with std 5."""
    seq_len = 100  # means 100 and 50 lie 10 std apart: every draw's mean is identifiable
    lengths = np.array(window_lengths(2_000_000, seq_len, np.random.default_rng(0))[:-1])
    half = lengths < 75
    n = len(lengths)
    assert abs(half.mean() - 0.05) < FRACTION_SIGMAS * np.sqrt(0.05 * 0.95 / n)
    for group, mean in ((lengths[~half], 100), (lengths[half], 50)):
        assert abs(group.mean() - mean) < FRACTION_SIGMAS * 5 / np.sqrt(len(group))
        rounded_std = np.sqrt(5**2 + 1 / 12)  # rounding adds a uniform error's variance
        assert abs(group.std() - rounded_std) < FRACTION_SIGMAS * 5 / np.sqrt(2 * len(group))
    short = np.array(window_lengths(100_000, 6, np.random.default_rng(1))[:-1])
    assert short.min() == 5  # draws below 5 are raised to 5
    # P(length = 5) = P(x < 5.5), x ~ N(6, 5^2) w.p. 0.95, N(3, 5^2) w.p. 0.05.
    p_min = 0.95 * _normal_cdf((5.5 - 6) / 5) + 0.05 * _normal_cdf((5.5 - 3) / 5)
    tolerance = FRACTION_SIGMAS * np.sqrt(p_min * (1 - p_min) / len(short))
    assert abs((short == 5).mean() - p_min) < tolerance


def _normal_cdf(z):
    import math

    return 0.5 * (1 + math.erf(z / math.sqrt(2)))
