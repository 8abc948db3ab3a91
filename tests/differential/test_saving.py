"""`.keras` save, then load in a fresh process: the reloaded model keeps our classes and
computes what ours computed before saving, and what the built-in computes."""

import json
import os
import subprocess
import sys
import tempfile

import hypothesis.strategies as st
import keras
import numpy as np
from hypothesis import given

from tests.differential import grammar
from tests.differential.build import arrays, feed, pair
from tests.differential.compare import assert_close, flat
from tests.differential.load_saved import classes
from tests.differential.profiles import budget, tried

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS_PER_PROCESS = (2, 4)  # models saved per example, all loaded by one subprocess
LOAD_TIMEOUT_S = 300


@budget("save_load")
@given(
    specs=st.lists(grammar.models(), min_size=MODELS_PER_PROCESS[0], max_size=MODELS_PER_PROCESS[1])
)
def test_saved_models_reload_in_a_fresh_process(specs):
    tried("save_load", len(specs))
    keras.backend.clear_session()
    with tempfile.TemporaryDirectory() as folder:
        expected = []
        for k, spec in enumerate(specs):
            ours, ref = pair(spec)
            xs = arrays(spec, ref)
            ours.save(os.path.join(folder, f"{k}.keras"))  # before a call moves stateful states
            got = flat(ours(feed(xs), training=False))
            want = flat(ref(feed(xs), training=False))
            expected.append((got, want, classes(ours)))
            np.savez(os.path.join(folder, f"{k}_in.npz"), *xs)
        env = dict(
            os.environ,
            KERAS_BACKEND=keras.backend.backend(),
            PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        )
        process = subprocess.run(
            [sys.executable, "-m", "tests.differential.load_saved", folder, str(len(specs))],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=LOAD_TIMEOUT_S,
        )
        assert process.returncode == 0, process.stderr[-4000:]
        for k, (before, want, want_classes) in enumerate(expected):
            with np.load(os.path.join(folder, f"{k}_out.npz")) as saved:
                loaded = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            with open(os.path.join(folder, f"{k}_classes.json"), encoding="utf-8") as f:
                assert json.load(f) == want_classes, f"model {k}: classes after reload"
            assert_close(loaded, before, f"model {k}: reloaded against ours before saving")
            assert_close(loaded, want, f"model {k}: reloaded against the built-in")
