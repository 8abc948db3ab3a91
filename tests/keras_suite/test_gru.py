"""Keras's gru_test.py, building keras_gated's classes (see substitute.py)."""

from tests.keras_suite.substitute import load_keras_tests

globals().update(load_keras_tests("gru_test"))
