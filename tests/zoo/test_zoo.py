"""The keras.io example zoo: every keras-io example with a recurrent layer, rebuilt small
(`tests/zoo/models.py`), once with our layers and once with Keras's built-ins. Each trains two
steps with `fit`, predicts, saves to `.keras`, loads back with `safe_mode=True` in a fresh
Python process with only `import keras_gated` (and `tests.zoo.models` where the example
defines its own layers) to the same predictions, and exports with `to_onnx`: one native ONNX
node per recurrent layer (a Bidirectional or TimeDistributed layer is one), no Loop or Scan,
and onnxruntime equal to Keras on the example's inputs. One fresh process serves every test of
a run, or of each pytest-xdist worker (`fresh_loader`).

The default run checks every example on our layers. The built-in twins are `slow`: on
Keras's layers the same graph only re-checks that the rebuilt example itself runs (trains,
loads, exports); the exporter on Keras's built-in layers is covered in the default run by
tests/export (`test_keras_examples.py` builds eight of these examples' graphs on both
implementations, the TimeDistributed, float-id Embedding and GELU tests take both, and the
layer-level export tests cover the plain LSTM/GRU layers of the rest on both).

docs/zoo.md lists the examples, these results, and the examples out of scope.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnxruntime as ort
import pytest

import keras_gated
from keras_gated.export import to_onnx
from tests.export.helpers import LOOP_OPS, RECURRENT_OPS, WEIGHT_SCALE, op_types
from tests.zoo.models import EXAMPLES, B

IMPLS = {"ours": keras_gated, "keras": keras.layers}

# A model loaded in another process computes the same float32 operations on the same weights,
# but all rows in one call where `predict` ran batches of B, so a kernel may sum in another
# order: measured 0 for most examples, at most 1.2e-7; 1e-6 leaves margin while a weight lost
# in loading shows as O(0.1).
LOAD_ATOL = 1e-6
# float32 onnxruntime against float32 Keras at these sizes (U <= 16, T <= 12, up to 5 stacked
# Bi-GRUs): differences O(1e-7)..O(1e-6); 1e-5 leaves margin while a wrong gate, mask step or
# state shows as O(0.1).
PARITY_ATOL = 1e-5

# Duplicates of a faster case (the same layer graph at other sizes): kept out of the default run.
SLOW = {
    "vision_handwriting_recognition",  # vision_captcha_ocr's graph
    "timeseries_timeseries_forecasting_with_lstm_for_temperature_prediction",  # weather's graph
    "nlp_imdb_lstm_sentiment",  # character_and_byte_level's graph: Embedding(float ids) -> LSTM
}
# Implementations whose twins are slow (see the module docstring).
SLOW_IMPLS = {"keras"}

# (example, implementation) -> why it fails today; strict, so a fix shows as XPASS. None now.
XFAIL = {}


def _params():
    params = []
    for name in EXAMPLES:
        for impl in sorted(IMPLS):
            marks = []
            if name in SLOW or impl in SLOW_IMPLS:
                marks.append(pytest.mark.slow)
            if (name, impl) in XFAIL:
                marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[name, impl]))
            params.append(pytest.param(name, impl, marks=marks, id=f"{name}-{impl}"))
    return params


def randomize(model, seed=0):
    """Every variable ~ N(0, WEIGHT_SCALE^2) (constant weights hide swapped gates), except
    BatchNormalization's moving variances, which stay positive."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = WEIGHT_SCALE * rng.standard_normal(variable.shape)
        if "moving_variance" in variable.path:
            value = np.abs(value) + 0.5
        variable.assign(value.astype(variable.dtype))
    return model


def feeds(model, x, rows=slice(None)):
    """Inputs by Keras input name in the Keras inputs' dtypes, as onnxruntime takes them (Keras
    casts, e.g. token ids fed to a float32 input)."""
    xs = x if isinstance(x, dict) else {model.inputs[0].name: x}
    dtypes = {kt.name: kt.dtype for kt in model.inputs}
    return {name: np.asarray(value)[rows].astype(dtypes[name]) for name, value in xs.items()}


def build(name, impl):
    keras.utils.set_random_seed(0)
    case = EXAMPLES[name](IMPLS[impl])
    randomize(case.model)
    # Eagerly: two steps of a traced train step cost 8-17 s per model in tracing and XLA
    # compiles on 2 cores (measured: ours 15.7 s, built-in 7.9 s for the IMDB Bi-LSTM, against
    # 2.6 s and 0.8 s eagerly); the layers' own graph paths are covered in tests/layers.
    case.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=case.loss, run_eagerly=True)
    return case


# The fresh process: reads one JSON request per line ({"path", "inputs", "want", "imports"}),
# loads the model with only `import keras_gated` (and the module defining the example's own
# custom layers, if any: `imports`), runs it eagerly (no predict function to trace) and answers
# one line: {"diff": max |loaded - want|} or {"error": ...}.
LOADER = """
import importlib, json, sys
import numpy as np
import keras_gated  # the only import a user's load needs
import keras
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    entry = json.loads(line)
    try:
        for module in entry["imports"]:
            importlib.import_module(module)
        model = keras.models.load_model(entry["path"], safe_mode=True)
        x = dict(np.load(entry["inputs"]))
        x = x if len(x) > 1 else next(iter(x.values()))
        got = keras.ops.convert_to_numpy(model(x, training=False))
        reply = {"diff": float(np.max(np.abs(got - np.load(entry["want"]))))}
    except Exception as error:
        reply = {"error": f"{type(error).__name__}: {error}"[:3000]}
    print(json.dumps(reply), flush=True)
"""


class FreshLoader:
    """One Python process, started once, that loads every saved model (`LOADER`)."""

    def __init__(self, log_path):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOADER],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.ready = False

    def reply(self):
        """The next JSON line the process writes (other output skipped)."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(
                    f"the fresh process stopped: {open(self.log_path).read()[-3000:]}"
                )
            if line.startswith("{"):
                return json.loads(line)

    def load_diff(self, folder, model, x, want):
        """max |fresh load's output - want| for the `model` saved as `folder`/model.keras
        (its inputs and `want` are written beside it)."""
        np.savez(folder / "inputs.npz", **feeds(model, x))
        np.save(folder / "want.npy", want)
        if not self.ready:
            assert self.reply() == {"ready": True}
            self.ready = True
        custom = {type(layer).__module__ for layer in model.layers}
        entry = {
            "path": str(folder / "model.keras"),
            "inputs": str(folder / "inputs.npz"),
            "want": str(folder / "want.npy"),
            "imports": sorted(m for m in custom if m.startswith("tests.")),
        }
        self.process.stdin.write(json.dumps(entry) + "\n")
        self.process.stdin.flush()
        reply = self.reply()
        assert "error" not in reply, reply["error"]
        return reply["diff"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="session")
def fresh_loader(tmp_path_factory):
    """Started before the first test (its imports overlap that test's training); one per run,
    or per pytest-xdist worker (session scope: other modules' tests between ours on a worker
    do not restart it)."""
    loader = FreshLoader(tmp_path_factory.mktemp("fresh_loader") / "stderr.txt")
    yield loader
    loader.close()


@pytest.mark.parametrize("name, impl", _params())
def test_example_trains_loads_and_exports_natively(tmp_path, fresh_loader, name, impl):
    case = build(name, impl)
    model = case.model

    history = model.fit(case.x, case.y, batch_size=B, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    predicted = model.predict(case.x, batch_size=B, verbose=0)
    assert np.isfinite(predicted).all()

    model.save(tmp_path / "model.keras")
    assert fresh_loader.load_diff(tmp_path, model, case.x, predicted) <= LOAD_ATOL

    path = tmp_path / "model.onnx"
    result = to_onnx(model, path)
    types = op_types(path)
    assert [t for t in types if t in LOOP_OPS] == [] and result.loop_layers == []
    assert len([t for t in types if t in RECURRENT_OPS]) == case.native_nodes
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = feeds(model, case.x, slice(0, B))
    (got,) = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})
    want = predicted[:B]
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) <= PARITY_ATOL
