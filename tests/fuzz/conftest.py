"""Fixtures of the fuzz tests: hypothesis budgets, and one tiny exported language model.

Keras is imported before keras_gated.cells, as in tests/export/conftest.py."""

import keras  # noqa: F401
import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def tiers(quick, long):
    """Parameters `budget` of a fuzz test: `quick` derandomized examples in the default tier
    (the same inputs on every run), `long` random ones under the `slow` marker."""
    return [
        pytest.param(settings(max_examples=quick, derandomize=True, **_COMMON), id="quick"),
        pytest.param(settings(max_examples=long, **_COMMON), id="long", marks=pytest.mark.slow),
    ]


@pytest.fixture(scope="package")
def tiny_onnx(tmp_path_factory):
    """A 1-layer LSTM language model (V=23, U=8) with a character tokenizer, as .onnx."""
    from keras_gated.export import to_onnx
    from tests.export.helpers import char_tokenizer, make_lm

    path = tmp_path_factory.mktemp("fuzz") / "lm.onnx"
    to_onnx(make_lm("lstm", 1, seed=5), path, tokenizer=char_tokenizer())
    return path
