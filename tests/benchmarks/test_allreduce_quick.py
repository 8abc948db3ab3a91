"""`benchmarks.allreduce`'s two workers on the tiny `--quick` model: the bytes reported are the
model's trainable parameters x 4, counted from the architecture, and the all-reduce returns
the sum of both workers' inputs. Benchmarks are not tests: no timing is looked at."""

import pytest

from benchmarks import allreduce

ALLREDUCE_ATOL = 1e-6  # each element is one float32 addition a + b, the same whichever worker
# adds it: the difference is 0 exactly; the margin only names the expected magnitude


def lm_parameters(vocab, embed, units, layers):
    """Tied embedding (V, E), no output bias; per LSTM layer kernel (D, 4U), recurrent kernel
    (U, 4U) and bias (4U), D = E for the first layer, U after."""
    inputs = [embed] + [units] * (layers - 1)
    return vocab * embed + sum(4 * units * (d + units + 1) for d in inputs)


def test_ring_sends_twice_the_share_of_the_others():
    assert allreduce.ring_bytes_per_worker(100, 2) == 100
    assert allreduce.ring_bytes_per_worker(100, 4) == 150


@pytest.mark.slow  # ~35 s; tests/training/test_distributed.py covers the all-reduce in training
@pytest.mark.tensorflow_only
def test_two_workers_reduce_every_gradient_byte_to_the_sum():
    options = allreduce.parse_args(["--quick", "--rounds", "1", "--warmup", "1"])
    results = allreduce.run_workers(options)
    params = lm_parameters(options.vocab, options.units, options.units, 2)
    assert [r["index"] for r in results] == [0, 1]
    for result in results:
        assert result["workers"] == result["replicas"] == 2
        assert result["rows"] == options.batch // 2
        assert result["params"] == params
        assert result["bytes"] == 4 * params
        assert result["max_error"] <= ALLREDUCE_ATOL
        assert set(result["kinds"].values()) == {"dense"}, result["kinds"]
        assert len(result["kinds"]) == 1 + 3 * 2  # E, then (W, U, b) per layer
        assert [len(t) for t in result["times"].values()] == [1, 1]
