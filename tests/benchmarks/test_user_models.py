"""`python -m benchmarks.user_models` runs one row end to end, in-process.

Benchmarks are not tests: nothing here looks at a timing. This checks that the smallest row
builds both models (`build_pair` raises unless ours holds our layers, the built-in Keras's, with
the same output shape), times them, and reports the row and its target.
"""

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
    for cell in ("| `timeseries` |", "| `ours` | keras_gated.LSTM |", "| `keras` | keras.LSTM |",
                 "timeseries: ours / built-in <= 0.70", "left XLA off",
                 "| `ours-xla` | keras_gated.LSTM, `jit_compile=True` |",
                 "`ours-xla` / built-in"):
        assert cell in text, f"missing {cell!r}"
    assert "`lm-650`" not in text  # only the selected row
