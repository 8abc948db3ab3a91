"""`benchmarks.backend_table` times the same function twice: ours and the built-in tagger,
built with copied weights, predict the same outputs. Nothing here looks at a timing; the
report is rendered from made-up times to check which cells it counts as meeting a target."""

import numpy as np
import pytest

from benchmarks import backend_table

PREDICT_TOLERANCE = 1e-5  # float32 over T=50 steps and two layers: differences ~1e-7 seen


@pytest.mark.slow  # tests/differential covers ours against the built-ins with copied weights
@pytest.mark.parametrize("cell", backend_table.CELLS)
def test_ours_and_builtin_tagger_predict_the_same(cell):
    models, _ = backend_table.build_models(cell, 32)
    x, y = backend_table.batch()
    ours, builtin = (np.asarray(models[name].predict_on_batch(x)) for name in ("ours", "keras"))
    assert ours.shape == (backend_table.BATCH, backend_table.STEPS, backend_table.TAGS)
    np.testing.assert_allclose(ours, builtin, atol=PREDICT_TOLERANCE)
    losses = [float(np.asarray(models[name].train_on_batch(x, y))) for name in ("ours", "keras")]
    assert losses[0] == pytest.approx(losses[1], rel=PREDICT_TOLERANCE)


def test_targets_split_cells_by_the_median_ratio():
    def config(cell, units, ours, other):
        times = {
            "ours-train": [ours] * 3,
            "keras-train": [other] * 3,
            "ours-predict": [ours] * 3,
            "keras-predict": [other] * 3,
            "nn-train": [other] * 3,
            "nn-predict": [other] * 3,
        }
        return {
            "cell": cell,
            "units": units,
            "rounds": 3,
            "repeat": 1,
            "times": times,
            "diff": 0.0,
            "xla": {"ours": False, "keras": False},
        }

    entry = {
        "backend": "torch",
        "versions": {},
        "threads": {},
        "configs": [config("lstm", 32, 0.7, 1.0), config("gru", 128, 1.1, 1.0)],
    }
    rows = {target: (met, missed) for _, target, met, missed in backend_table.target_rows([entry])}
    assert rows["training ours / built-in <= 0.8"] == ("LSTM 32 (0.70)", "GRU 128 (1.10)")
    assert rows["predict ours / built-in <= 0.9"] == ("LSTM 32 (0.70)", "GRU 128 (1.10)")
    assert rows["training ours / torch.nn <= 1.2"] == ("LSTM 32 (0.70), GRU 128 (1.10)", "none")
    assert len(backend_table.table_rows(entry)) == 4  # vs keras and vs torch.nn, per config


@pytest.mark.parametrize("cell", backend_table.CELLS)
def test_floor_model_computes_the_builtin_tagger(cell):
    """The floor (benchmarks/floors.py, the tagger in the backend's own library) predicts what
    Keras's built-in tagger predicts with the floor's weights copied in."""
    import keras

    from benchmarks import floors

    x, y = backend_table.batch()
    units = 8
    floor = floors.SYSTEMS[keras.backend.backend()](cell, units, x, y)
    model = keras.Sequential(backend_table.tagger_layers(cell, units)(keras.layers))
    weights = floors._weights(cell, units, backend_table.FEATURES, backend_table.TAGS)
    for layer, w in zip(model.layers, weights):
        if cell == "gru" and len(w) == 3:  # Keras's reset-after GRU: biases (input; recurrent)
            w = (*w[:2], np.stack([w[2], np.zeros_like(w[2])]))
        layer.set_weights(list(w))
    np.testing.assert_allclose(
        floor["floor-predict"](), model.predict_on_batch(x), atol=PREDICT_TOLERANCE
    )
    assert np.isfinite(floor["floor-train"]())
    if "keraslayer-predict" in floor:  # JAX: the same loop as a Keras layer
        np.testing.assert_allclose(
            floor["keraslayer-predict"](), model.predict_on_batch(x), atol=PREDICT_TOLERANCE
        )
        assert np.isfinite(floor["keraslayer-train"]())
