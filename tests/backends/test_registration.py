"""After `import keras_gated` alone, in any import order, every serialisable class loads
(also when a layer is used before `import keras`, which imports Keras from inside the library).

Each check runs in a fresh process (`load_check.py`), so nothing this test session imported
can register a class on the library's behalf. Within the process the configs are
deserialised first, cells before layers before models before the metric, so a class whose
module the registration missed fails before another load could import that module.
"""

import pytest

from tests.backends import saved

# A fresh process on the same backend runs the same float32 kernels on the same inputs; only
# a different reduction order could differ, O(1e-7) on O(1) outputs.
ATOL_FRESH_PROCESS = 1e-6


ORDERS = ["keras_first", "keras_gated_first", "layer_first"]


@pytest.fixture(scope="module")
def checks(saved_files):
    """One fresh process per import order, started together (they wait mostly on imports)."""
    folder, files = saved_files
    models = [{**files[k], "atol": ATOL_FRESH_PROCESS} for k in ("ppl", "layers", "lm")]
    return {order: saved.start(files["configs"] + models, folder, order=order) for order in ORDERS}


@pytest.mark.parametrize("order", ORDERS)
def test_every_class_loads_in_a_fresh_process(checks, order):
    out = saved.finish(checks[order])
    for obj in saved.config_objects():
        assert f"deserialized {type(obj).__name__}" in out, out
    assert out.count("loaded ") == 3, out
