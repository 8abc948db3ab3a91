"""Keras's own recurrent-layer tests, run against keras_gated's classes.

keras_gated's `LSTM`, `GRU`, `SimpleRNN` and their cells claim to be drop-in replacements for
Keras's built-ins. The strongest check of that claim is Keras's own test files, run with our
classes in place of theirs. This module produces those files.

Mechanism: a plain text substitution, one regular expression, on the source of the test files
of the Keras that is installed (found through `keras.__file__`, so the tests always match the
Keras we run against):

    layers.LSTM        ->  keras_gated.LSTM        (likewise GRU, SimpleRNN,
    layers.LSTMCell    ->  keras_gated.LSTMCell     LSTMCell, GRUCell, SimpleRNNCell)

and `import keras_gated` appended to the line `from keras.src import layers`, so each
rewritten file keeps Keras's line numbers (a traceback's line is the same line in Keras's
file). Every other name (`layers.RNN`, `layers.Bidirectional`, `layers.StackedRNNCells`, ...)
stays Keras's own. Nothing is patched at run time: what runs is exactly the rewritten text,
and `diff` against Keras's file shows every change (a patched `layers` namespace would need a
proxy object in Keras's module and leave no such record). The rewritten files are written to
a temporary directory (removed when the process exits, never committed; its path shows in
tracebacks) and imported from there; `load_keras_tests` returns their test classes, which
`test_<name>.py` beside this file put in their own namespace for pytest to collect.

Guards keep the substitution honest when Keras changes its files: each file must contain at
least one substitution; after it no bare name `LSTM`, `GRU`, ... may remain in the code (found
by the tokenizer, so strings and comments do not count), which would mean a test reaching
Keras's class by another spelling (`from keras.src.layers import LSTM`); and test_coverage.py
checks that `KERAS_TEST_FILES` is every Keras RNN test file building one of the six classes.

Keras's tests that assert Keras's private implementation of its own classes (not behaviour a
drop-in replacement shares) are listed in `NOT_APPLICABLE`, each with its reason; they run
as strict expected failures, so one that starts to pass is reported.
"""

import importlib.util
import io
import os
import re
import sys
import tempfile
import tokenize

import pytest

SUBSTITUTED = ("LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell")
SUBSTITUTION = re.compile(r"\blayers\.(" + "|".join(SUBSTITUTED) + r")\b")
LAYERS_IMPORT = "from keras.src import layers\n"

# Keras's test files that build LSTM, GRU, SimpleRNN or their cells (test_coverage.py checks
# the list against the installed Keras). rnn_test.py, time_distributed_test.py and
# dropout_rnn_cell_test.py use none of them (they test Keras's RNN wrapper with cells of their
# own), so running them would test Keras, not us.
KERAS_TEST_FILES = (
    "lstm_test",
    "gru_test",
    "simple_rnn_test",
    "bidirectional_test",
    "stacked_rnn_cells_test",
)

# (file, class, test) -> why the test does not apply to keras_gated's classes. Each runs as a
# strict expected failure raising AssertionError: any other error (a constructor argument we
# refuse, say) still fails, and a pass is reported as XPASS(strict), i.e. a failure.
# (bidirectional_test.py names its one test class SimpleRNNTest, though it tests Bidirectional.)
_FUSED_BIDIRECTIONAL = (
    "asserts that Keras's private Bidirectional._can_attempt_fused_{0}() accepts Keras's own "
    "{1}: the fused two-direction cuDNN kernel (backend.bidirectional_{0}) is dispatched only "
    "for isinstance(layer, keras.layers.{1}). Bidirectional(keras_gated.{1}) takes the public "
    "path (forward_layer and backward_layer called in turn), the path test_fused_{0}_"
    "matches_unfused compares with the fused one; our own cuDNN use is inside our layer"
)
_TORCH_CUDNN = (
    "spies on torch._VF.gru, the kernel that Keras's torch backend (keras.src.backend.torch."
    "rnn.gru -> _cudnn_gru) calls for Keras's own GRU; keras_gated's layers hand calls to "
    "cuDNN through Keras's TensorFlow backend only (keras_gated/layers/cudnn.py) and on torch "
    "run their own loop, so the private kernel is never called. Runs only on torch with CUDA "
    "(skipped elsewhere)"
)
NOT_APPLICABLE = {
    ("bidirectional_test", "SimpleRNNTest", "test_fused_lstm_eligibility"): (
        _FUSED_BIDIRECTIONAL.format("lstm", "LSTM")
    ),
    ("bidirectional_test", "SimpleRNNTest", "test_fused_gru_eligibility"): (
        _FUSED_BIDIRECTIONAL.format("gru", "GRU")
    ),
    ("gru_test", "GRUTest", "test_torch_cudnn_dispatch_fires"): _TORCH_CUDNN,
    (
        "bidirectional_test",
        "SimpleRNNTest",
        "test_torch_cudnn_bidirectional_gru_dispatch_fires",
    ): _TORCH_CUDNN,
}

_generated = tempfile.TemporaryDirectory(prefix="keras_suite_")


def keras_rnn_tests_dir():
    import keras

    return os.path.join(os.path.dirname(keras.__file__), "src", "layers", "rnn")


def substitute(source, name):
    """Returns `source` with Keras's recurrent classes replaced by keras_gated's."""
    if LAYERS_IMPORT not in source:
        raise RuntimeError(f"{name}: no line {LAYERS_IMPORT.strip()!r} to substitute after")
    rewritten, count = SUBSTITUTION.subn(r"keras_gated.\1", source)
    if not count:
        raise RuntimeError(f"{name}: no layers.LSTM/GRU/SimpleRNN(Cell) to substitute")
    rewritten = rewritten.replace(
        LAYERS_IMPORT, "from keras.src import layers; import keras_gated\n", 1
    )
    _check_no_keras_class_left(rewritten, name)
    return rewritten


def _check_no_keras_class_left(source, name):
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)]
    for previous, dot, token in zip(tokens, tokens[1:], tokens[2:]):
        if token.type == tokenize.NAME and token.string in SUBSTITUTED:
            if not (previous.string == "keras_gated" and dot.string == "."):
                raise RuntimeError(
                    f"{name}:{token.start[0]}: {token.line.strip()!r} reaches "
                    f"{token.string} by a spelling the substitution does not cover"
                )


def load_keras_tests(name):
    """Rewrites Keras's `<name>.py`, imports it, and returns its test classes by name."""
    with open(os.path.join(keras_rnn_tests_dir(), name + ".py"), encoding="utf-8") as f:
        source = substitute(f.read(), name)
    path = os.path.join(_generated.name, name + ".py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    module_name = "keras_suite_generated_" + name
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    classes = {
        attr: value
        for attr, value in vars(module).items()
        if isinstance(value, type) and attr.endswith("Test") and value.__module__ == module_name
    }
    _mark_not_applicable(name, classes)
    return classes


def _mark_not_applicable(name, classes):
    for (file, cls, test), reason in NOT_APPLICABLE.items():
        if file != name:
            continue
        method = getattr(classes.get(cls), test, None)
        if method is None:
            raise RuntimeError(f"NOT_APPLICABLE names {file}::{cls}::{test}, which Keras lacks")
        expected = pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)
        setattr(classes[cls], test, expected(method))
