import pytest

from tests.conftest import train_argv, write_corpus


@pytest.fixture(scope="package")
def exported_run(tmp_path_factory):
    """A tiny trained word-level run (no XLA, two steps)."""
    from keras_gated.cli.main import main

    root = tmp_path_factory.mktemp("exported")
    corpus = write_corpus(root / "corpus", lines=(40, 10, 10), per_line=6)
    out = root / "run"
    assert main(train_argv(corpus, out, epochs=1)) == 0
    return out


@pytest.fixture(scope="package")
def exported(exported_run):
    """`exported_run` as an .onnx file."""
    from keras_gated.cli.main import main

    path = exported_run.parent / "model.onnx"
    assert main(["export", str(exported_run), str(path)]) == 0
    return path
