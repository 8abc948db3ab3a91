"""The suite covers every Keras RNN test file that builds LSTM, GRU, SimpleRNN or their cells."""

import os

from tests.keras_suite.substitute import KERAS_TEST_FILES, SUBSTITUTION, keras_rnn_tests_dir

HERE = os.path.dirname(os.path.abspath(__file__))


def test_every_keras_file_building_our_classes_is_in_the_suite():
    directory = keras_rnn_tests_dir()
    building = []
    for file in sorted(os.listdir(directory)):
        if file.endswith("_test.py"):
            with open(os.path.join(directory, file), encoding="utf-8") as f:
                if SUBSTITUTION.search(f.read()):
                    building.append(file[: -len(".py")])
    assert sorted(building) == sorted(KERAS_TEST_FILES)


def test_every_suite_file_has_its_test_module():
    for name in KERAS_TEST_FILES:
        module = "test_" + name[: -len("_test")] + ".py"
        assert os.path.exists(os.path.join(HERE, module)), module
