"""Keras's test files expect the markers of Keras's own conftest.py (not shipped in the wheel).

`requires_trainable_backend` is registered and applied as Keras applies it: skipped on the
backends that cannot train (numpy, openvino). Our backends all train, so it skips nothing
today; it is here so a Keras release whose RNN tests carry the marker still runs cleanly.
"""

import pytest

UNTRAINABLE_BACKENDS = ("numpy", "openvino")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_trainable_backend: Keras's marker; skipped on numpy and openvino"
    )


def pytest_collection_modifyitems(config, items):
    import keras

    backend = keras.backend.backend()
    if backend not in UNTRAINABLE_BACKENDS:
        return
    skip = pytest.mark.skip(reason=f"Keras's requires_trainable_backend; backend is {backend}")
    for item in items:
        if item.get_closest_marker("requires_trainable_backend"):
            item.add_marker(skip)
