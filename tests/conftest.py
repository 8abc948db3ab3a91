import os
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On JAX every eager layer call compiles its lax.scan; the tests' graphs are tiny, so XLA's
# optimisation passes cost far more than they save (measured: the same 20 layer tests in 31 s
# instead of 61 s). Only for the JAX backend and only if the caller set no XLA flags; the
# numbers stay within every tolerance (they are checked against the oracle, not against XLA).
JAX_TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if os.environ.get("KERAS_BACKEND") == "jax" and "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = JAX_TEST_XLA_FLAGS
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WORDS = "the cat sat on a mat and the dog ran to the red door".split()


def write_corpus(folder, words=WORDS, lines=(300, 60, 60), per_line=10, seed=0):
    """Writes files a.txt, b.txt, c.txt of random lines of `words` (one per split)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in zip("abc", lines):
        text = "\n".join(" ".join(rng.choice(words, per_line)) for _ in range(count))
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def tiny_corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


def pytest_collection_modifyitems(config, items):
    """Skips tests marked `tensorflow_only` on the JAX and torch backends."""
    marked = [item for item in items if item.get_closest_marker("tensorflow_only")]
    if not marked:
        return
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"TensorFlow-specific; the backend is {backend}")
    for item in marked:
        item.add_marker(skip)


def train_argv(corpus, out, epochs=2):
    """`keras-gated train` arguments of the CLI tests' tiny run (no XLA, two steps an epoch)."""
    return [
        "train",
        "--corpus",
        str(corpus),
        "--units",
        "8",
        "--embed-dim",
        "8",
        "--batch-size",
        "2",
        "--seq-len",
        "6",
        "--epochs",
        str(epochs),
        "--steps-per-epoch",
        "2",
        "--xla",
        "false",
        "--out",
        str(out),
    ]
