"""The .keras files and configs that fresh processes load (`load_check.py`), and the runner.

One functional model holds every cell (inside `keras.layers.RNN`), every layer type and
VariationalDropout; a LanguageModel; a small compiled model with the Perplexity metric.
Every weight is random (constant weights hide swapped gates).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np

import keras_gated
from keras_gated.training import Perplexity
from tests.conftest import JAX_TEST_XLA_FLAGS

B, T, D, U = 3, 5, 4, 6
V, E = 11, 6
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_check.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# A fresh process imports a backend and builds the models: about 5-20 s on a loaded machine.
SUBPROCESS_TIMEOUT_S = 240


def _randomise(model, rng):
    model.set_weights(
        [rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype) for w in model.get_weights()]
    )


def layers_model(rng):
    """Every cell inside keras.layers.RNN, every layer type, VariationalDropout; random weights."""
    inputs = keras.Input((T, D))
    x = keras.layers.RNN(keras_gated.SimpleRNNCell(U), return_sequences=True)(inputs)
    x = keras.layers.RNN(keras_gated.LSTMCell(U, peephole=True), return_sequences=True)(x)
    x = keras.layers.RNN(keras_gated.GRUCell(U, reset_after=False), return_sequences=True)(x)
    x = keras_gated.SimpleRNN(U, activation="relu", return_sequences=True)(x)
    x = keras_gated.LSTM(U, layer_norm=True, return_sequences=True)(x)
    x = keras_gated.GRU(U, return_sequences=True, go_backwards=True)(x)
    x = keras_gated.GRU(U, layer_norm=True, return_sequences=True)(x)
    x = keras.layers.RNN(
        keras_gated.GRUCell(U, layer_norm=True, reset_after=False), return_sequences=True
    )(x)
    x = keras_gated.LSTM(U, zoneout=0.2, cell_zoneout=0.3, return_sequences=True)(x)
    x = keras.layers.RNN(
        keras_gated.GRUCell(U, zoneout=0.25, zoneout_variational=True), return_sequences=True
    )(x)
    x = keras.layers.RNN(keras_gated.IndRNNCell(U, activation="relu"), return_sequences=True)(x)
    x = keras_gated.IndRNN(U, recurrent_max_abs=0.9, return_sequences=True)(x)
    x = keras_gated.VariationalDropout(0.3, seed=2)(x)
    model = keras.Model(inputs, x)
    _randomise(model, rng)
    return model


def perplexity_model(rng):
    """Embedding -> Dense logits, compiled with our Perplexity metric."""
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(V, E),
            keras.layers.Dense(V),
        ]
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[Perplexity()]
    )
    _randomise(model, rng)
    return model


def config_objects():
    """One instance of every serialisable class, with non-default arguments."""
    return [
        keras_gated.SimpleRNNCell(U, activation="sigmoid"),
        keras_gated.LSTMCell(U, peephole=True, layer_norm=True),
        keras_gated.GRUCell(U, reset_after=False, layer_norm=True),
        keras_gated.IndRNNCell(U, recurrent_max_abs=None, recurrent_constraint="non_neg"),
        keras_gated.SimpleRNN(U, return_sequences=True),
        keras_gated.LSTM(
            U,
            unit_forget_bias=False,
            dropout=0.1,
            seed=4,
            cell_zoneout=0.1,
            zoneout_variational=True,
        ),
        keras_gated.GRU(U, recurrent_dropout=0.2, go_backwards=True),
        keras_gated.IndRNN(U, activation="relu", recurrent_max_abs=2 ** (1 / T)),
        keras_gated.VariationalDropout(0.25, seed=3),
        keras_gated.EmbeddingDropout(V, 0.2, seed=6),
        keras_gated.LanguageModel(V, cell="gru", embed_dim=E, units=E, num_layers=1),
        Perplexity(name="ppl"),
    ]


def write(folder, seed=0):
    """Saves the files under `folder`; returns {"configs": [...], "layers": entry, "lm": ..., "ppl": ...}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)

    def entry(name, model, x, atol):
        path = str(folder / f"{name}.keras")
        model.save(path)
        np.save(folder / f"{name}_x.npy", x)
        np.save(folder / f"{name}_y.npy", keras.ops.convert_to_numpy(model(x)))
        return {
            "model": path,
            "class": type(model).__name__,
            "inputs": str(folder / f"{name}_x.npy"),
            "outputs": str(folder / f"{name}_y.npy"),
            "atol": atol,
        }

    x = rng.normal(size=(B, T, D)).astype("float32")
    tokens = rng.integers(0, V, size=(B, T)).astype("int32")
    lm = keras_gated.language_model(V, cell="lstm", embed_dim=E, units=E, num_layers=2, seed=1)
    _randomise(lm, rng)
    ppl_model = perplexity_model(rng)
    targets = np.roll(tokens, -1, axis=1)
    np.save(folder / "ppl_targets.npy", targets)
    result = ppl_model.evaluate(tokens, targets, verbose=0, return_dict=True)
    files = {
        "layers": entry("layers", layers_model(rng), x, 0.0),
        "lm": entry("lm", lm, tokens, 0.0),
        "ppl": {
            **entry("ppl", ppl_model, tokens, 0.0),
            "evaluate": {
                "y": str(folder / "ppl_targets.npy"),
                "perplexity": float(result["perplexity"]),
                "rtol": 1e-6,
            },
        },
    }
    files["configs"] = [
        {
            "config": keras.saving.serialize_keras_object(obj),
            "class": type(obj).__name__,
            "get_config": json.loads(json.dumps(obj.get_config())),
        }
        for obj in config_objects()
    ]
    return files


def start(manifest, folder, order="keras_first", backend=None):
    """Starts load_check.py on `manifest` in a fresh process; `finish` collects it."""
    path = folder / f"manifest-{order}-{backend}.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    env = {
        **os.environ,
        "KERAS_BACKEND": backend or keras.backend.backend(),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    if env["KERAS_BACKEND"] != "jax" and env.get("XLA_FLAGS") == JAX_TEST_XLA_FLAGS:
        del env["XLA_FLAGS"]  # the JAX-only speed flags of tests/conftest.py
    return subprocess.Popen(
        [sys.executable, SCRIPT, order, str(path)],
        cwd=str(folder),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process):
    """The stdout of a `start`ed check, which must have passed."""
    stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    assert process.returncode == 0 and stdout.rstrip().endswith("OK"), (
        f"exit {process.returncode}\n{stdout}\n{stderr[-4000:]}"
    )
    return stdout


def run(manifest, folder, order="keras_first", backend=None):
    """Runs load_check.py on `manifest` in a fresh process; returns its stdout."""
    return finish(start(manifest, folder, order, backend))
