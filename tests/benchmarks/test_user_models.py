"""`python -m benchmarks.user_models` runs one row end to end, in-process.

Benchmarks are not tests: nothing here looks at a timing. This checks that the smallest row
builds both models (`build_pair` raises unless ours holds our layers, the built-in Keras's, with
the same output shape), times them, and reports the row and its target.
"""

import numpy as np
import pytest

from benchmarks import user_models

TINY = ["--quick", "--rows", "timeseries", "--rounds", "1", "--warmup", "1", "--steps", "1"]


@pytest.mark.tensorflow_only
def test_quick_row_is_reported(tmp_path):
    out = tmp_path / "section.md"
    assert user_models.main([*TINY, "--out", str(out)]) == 0
    text = out.read_text()
    assert "## Training a user's own model" in text
    assert "python -m benchmarks.user_models --quick --rows timeseries" in text
    for cell in (
        "| `timeseries` |",
        "| `ours` | keras_gated.LSTM |",
        "| `keras` | keras.LSTM |",
        "timeseries: ours / built-in <= 0.70",
        "left XLA off",
        "| `ours-xla` | keras_gated.LSTM, `jit_compile=True` |",
        "`ours-xla` / built-in",
    ):
        assert cell in text, f"missing {cell!r}"
    assert "`lm-650`" not in text  # only the selected row


@pytest.mark.tensorflow_only
def test_recurrent_gemm_floor_counts_every_recurrent_layer():
    """The word-LM bound's matmul work: per layer 2 B T G U (3 D + 3 U) FLOPs (x W, da W^T,
    x^T da with D inputs; h U, da U^T, h^T da with U), over layers of other widths and cells."""
    import keras

    B, T, D, U1, U2 = 2, 3, 5, 4, 6
    model = keras.Sequential(
        [
            keras.Input((T, D)),
            keras.layers.LSTM(U1, return_sequences=True),
            keras.layers.GRU(U2, return_sequences=True),
        ]
    )
    floor = user_models.recurrent_gemm_floor(model, np.zeros((B, T, D), "float32"))
    want = 2 * B * T * (4 * U1 * (3 * D + 3 * U1) + 3 * U2 * (3 * U1 + 3 * U2))
    assert floor["gflop"] == pytest.approx(want / 1e9, rel=1e-12)
    assert floor["rate"] > 0 and floor["seconds"] == pytest.approx(want / floor["rate"])
