"""Hypothesis profiles and per-path example budgets for the differential harness.

Two profiles, chosen by the environment variable KERAS_GATED_DIFFERENTIAL:
    quick (default)  derandomize=True: the same examples on every run, a handful per path,
                     sized so the whole folder takes about a minute on TensorFlow on 2 cores;
                     no shrinking (a failure prints the drawn example as it came).
    long             random examples, hundreds to thousands per path, shrunk on failure
                     (`make test-differential`); KERAS_GATED_DIFFERENTIAL_CAP=<n> caps
                     every path at n examples.
Each test counts the examples it tried (`tried(path)`); conftest.py prints the table.
"""

import collections
import os

from hypothesis import HealthCheck, Phase, settings

PROFILE = os.environ.get("KERAS_GATED_DIFFERENTIAL", "quick")
if PROFILE not in ("quick", "long"):
    raise ValueError(f"KERAS_GATED_DIFFERENTIAL must be quick or long, got {PROFILE!r}")

_COMMON = dict(
    deadline=None,  # one example builds, traces and compiles Keras models: seconds, not ms
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
settings.register_profile(
    "differential-quick", derandomize=True, phases=[Phase.explicit, Phase.generate], **_COMMON
)
settings.register_profile("differential-long", derandomize=False, **_COMMON)

# Examples per path: (quick, long). The long budgets give every path thousands of examples
# in all except the slow ones (compiles, subprocesses, export), which get hundreds.
BUDGETS = {
    "constructor": (10, 1000),
    "shapes": (12, 3000),
    "eager": (12, 2000),
    "gradients": (6, 1000),
    "predict": (4, 500),
    "fit_evaluate": (3, 300),
    "tf_function": (6, 500),
    "jit_compile": (2, 200),
    "save_load": (1, 60),  # each example is a batch of models saved and loaded in one process
    "onnx": (6, 500),
    "invalid": (25, 1000),  # a few hundred distinct misuses
}
TRIED = collections.Counter()
# KERAS_GATED_DIFFERENTIAL_CAP=<n> caps every path's examples (a shorter long run).
CAP = int(os.environ.get("KERAS_GATED_DIFFERENTIAL_CAP", "0"))


def budget(path):
    """hypothesis `settings` for one path under the current profile."""
    quick, long = BUDGETS[path]
    count = quick if PROFILE == "quick" else long
    if CAP:
        count = min(count, CAP)
    return settings(settings.get_profile(f"differential-{PROFILE}"), max_examples=count)


def tried(path, count=1):
    TRIED[path] += count
