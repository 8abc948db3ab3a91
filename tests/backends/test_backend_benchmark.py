"""The training-step benchmark of the other backends (`benchmarks/backend_training.py`) runs
on this backend and its BENCHMARKS.md section and targets read its result. Benchmarks are not
tests: no timing is looked at. (`tests/benchmarks` runs the TensorFlow benchmark command.)"""

import keras
import pytest

from benchmarks import backend_training, recurrent_gemms, report
from benchmarks.training import TrainSetup


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="benchmarks.run times the TensorFlow backend in-process",
)
def test_backend_training_step_runs_and_is_reported():
    setup = TrainSetup(vocab=50, units=8, layers=2, batch=4, steps=5)
    times = backend_training.measure(setup, ["lstm"], rounds=1, warmup=1)
    assert set(times["lstm"]) == set(backend_training.SYSTEMS)
    assert all(len(samples) == 1 and samples[0] > 0 for samples in times["lstm"].values())
    backend = keras.backend.backend()
    entry = {
        "backend": backend,
        "versions": {"keras": keras.__version__},
        "setup": setup,
        "times": times,
        "descriptions": backend_training.descriptions(setup, ["lstm"]),
    }
    text = report.backend_training_section({"backend_training": [entry]})
    assert f"## Training step on the {backend.upper()} backend" in text
    assert f"### LSTM — {backend}" in text and "`keras-drop`" in text
    assert len(report.backend_training_targets(entry)) == len(report.BACKEND_TRAIN_TARGETS)
    assert "`floor`" in text  # timed beside the others: what no recurrent layer goes below
    if backend == "jax":  # XLA's GEMM times give the bound line
        entry["recurrent_gemms"] = {"lstm": recurrent_gemms.measure(setup, "lstm")}
        text = report.backend_training_section({"backend_training": [entry]})
        assert "Their matmuls alone take" in text and "`h U`" not in text
        assert "h U `(4, 8) @ (8, 32)` 10 ×" in text  # B=4, U=8, 4U; T=5 steps x 2 layers


def test_recurrent_gemm_flops_are_the_fused_path_s():
    """6 GEMMs of 2 B T U G U FLOPs each per layer (E = U): forward x W and h U, backward
    da W^T, da U^T, x^T da and h^T da."""
    B, T, U = 3, 5, 7
    for cell, G in (("lstm", 4), ("gru", 3)):
        total = sum(
            recurrent_gemms.flops(lhs, form, rhs) * calls
            for _, lhs, form, rhs, calls in recurrent_gemms.layer_gemms(cell, B, T, U, U)
        )
        assert total == 6 * 2 * B * T * U * G * U
