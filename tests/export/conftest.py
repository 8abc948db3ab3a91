"""Export tests import Keras before keras_gated.cells: importing the cells first trips the
registration hook of keras_gated/__init__.py into a circular import."""

import keras  # noqa: F401
