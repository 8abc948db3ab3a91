""".keras files that would run code, given to the commands that load a run's model.

A run's model.keras holding a `Lambda` (Python bytecode), or a layer of an unknown class or
of a module outside Keras and keras_gated, is refused under safe_mode: each command prints
one line naming the file and exits 2, and the Lambda never runs (it would create a marker
file). Any other file Keras cannot load is named too.
"""

import contextlib
import io
import json
import shutil
import zipfile

import keras
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_gated.cli.main import LONGEST_MESSAGE, main
from keras_gated.training.run_dir import MODEL
from tests.fuzz.conftest import tiers

COMMANDS = [
    ["generate", "{run}", "--prompt", "to be"],
    ["export", "{run}", "{run}/m.onnx"],
    ["evaluate", "{run}"],
    ["diagnose", "{run}"],
]


def lambda_model(marker):
    """A model whose Lambda creates `marker` whenever it runs."""
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    return keras.Sequential([keras.Input((3,)), keras.layers.Lambda(touch)])


def rewrite_config(source, target, edit):
    """Copies the .keras zip `source` to `target` with `edit` applied to its config.json
    (where `edit` leaves the string "<deep>", brackets nested 5000 deep)."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    config = edit(config) or config
    deep = "[" * 5000 + "]" * 5000  # nested past Python's recursion limit
    files["config.json"] = json.dumps(config).replace('"<deep>"', deep).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def foreign_class(config):
    config["config"]["layers"][-1].update(
        module="subprocess", class_name="Popen", registered_name=None
    )


def unknown_class(config):
    config["config"]["layers"][-1].update(
        module="nowhere", class_name="NoSuchLayer", registered_name="NoSuchLayer"
    )


def named_function(config):  # a function by module and name: os.system
    config["config"]["layers"][-1]["config"]["function"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }


@pytest.fixture(scope="module")
def lambda_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsafe")
    marker = root / "the-lambda-ran"
    lambda_model(marker).save(root / "lambda.keras")
    marker.unlink(missing_ok=True)  # saving traces the model once
    return root / "lambda.keras", marker


def make_run(folder, model_file):
    from keras_gated.data.tokenizers import WordTokenizer
    from keras_gated.training.config import TrainConfig
    from keras_gated.training.run_dir import VOCAB, save_config

    folder.mkdir(exist_ok=True)
    save_config(folder, TrainConfig(), None)
    WordTokenizer().fit("to be or not to be").save(folder / VOCAB)
    shutil.copy(model_file, folder / MODEL)
    return folder


def test_the_marker_shows_when_the_lambda_runs(lambda_file):
    """The control: loaded without safe_mode, the same file runs the Lambda."""
    path, marker = lambda_file
    keras.models.load_model(path, safe_mode=False)(keras.ops.ones((1, 3)))
    assert marker.exists()
    marker.unlink()


def deep_config(config):  # not unsafe: Python's JSON parser gives up
    config["config"]["layers"][-1]["config"]["name"] = "<deep>"


@pytest.mark.parametrize(
    "edit,problem",
    [
        (None, "refused under safe_mode: Requested the deserialization of a `Lambda` layer"),
        (unknown_class, "refused under safe_mode: Could not locate class 'NoSuchLayer'"),
        (foreign_class, "refused under safe_mode: Could not locate class 'Popen'"),
        (named_function, "refused under safe_mode: Could not locate function 'system'"),
        (deep_config, "maximum recursion depth exceeded"),
    ],
)
def test_commands_refuse_an_unsafe_model_in_one_line(edit, problem, lambda_file, tmp_path):
    path, marker = lambda_file
    if edit is not None:
        rewrite_config(path, tmp_path / "edited.keras", edit)
        path = tmp_path / "edited.keras"
    run = make_run(tmp_path / "run", path)
    for argv in COMMANDS:
        line = refusal([a.format(run=run) for a in argv])
        assert f"error: {run / MODEL}: {problem}" in line, line
        assert not marker.exists(), argv


def refusal(argv):
    """main(argv)'s one line of error (after diagnose's progress bar, if any)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 2, argv
    *bar, line = [part.rsplit("\r", 1)[-1] for part in err.getvalue().split("\n") if part]
    assert line.startswith(f"keras-gated {argv[0]}: error: "), err.getvalue()
    assert len(line) < LONGEST_MESSAGE + 100 and all("stage/s" in part for part in bar), line
    return line


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats()
    | st.sampled_from(
        ["__lambda__", "function", "keras", "builtins", "os", "system", "Lambda", "Dense", ""]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def places(tree, where=()):
    """The key paths of every value inside a JSON tree."""
    yield where
    items = (
        tree.items()
        if isinstance(tree, dict)
        else enumerate(tree)
        if isinstance(tree, list)
        else ()
    )
    for key, value in items:
        yield from places(value, (*where, key))


@pytest.mark.parametrize("budget", tiers(15, 500))
def test_a_model_config_edited_at_random_is_refused_in_one_line(budget, lambda_file, tmp_path):
    path, marker = lambda_file
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    everywhere = list(places(config))[1:]

    @budget
    @given(where=st.sampled_from(everywhere), value=JSON, deep=st.booleans())
    def check(where, value, deep):
        def edit(config):
            parent = config
            for key in where[:-1]:
                parent = parent[key]
            parent[where[-1]] = "<deep>" if deep else value

        rewrite_config(path, tmp_path / "edited.keras", edit)
        run = make_run(tmp_path / "run", tmp_path / "edited.keras")
        line = refusal(["generate", str(run), "--prompt", "to be"])
        assert f"error: {run / MODEL}" in line, line  # the file, whatever Keras raised
        assert not marker.exists(), where

    check()
