"""Registers every serialisable class with Keras as soon as Keras is imported.

`keras.models.load_model` and `deserialize_keras_object` find our classes by their registered
names ("keras_gated>LSTM"), which exist once the modules defining them have run. `install()`
(called by `import keras_gated`) arranges that, in any import order, without importing Keras:
- a post-import hook on `keras` (`wrapt.register_post_import_hook`; at once if Keras is
  already imported) imports `SERIALIZABLE`;
- when Keras is first imported from inside one of our own modules (`import keras_gated.layers`
  before `import keras`), importing the others then would meet that module half-initialised,
  so the registration waits until the outermost keras_gated import has finished: every
  keras_gated submodule is loaded through `_CountingLoader`, which keeps that depth.
"""

import importlib
import importlib.abc
import sys

SERIALIZABLE = (  # the modules whose classes carry `register_keras_serializable`
    "keras_gated.cells",
    "keras_gated.layers",
    "keras_gated.models.language_model",
    "keras_gated.training.metrics",
)

_state = {"depth": 0, "pending": False}


def register(_keras_module=None):
    """Imports `SERIALIZABLE` now, or once the keras_gated import in progress has finished."""
    if _state["depth"]:
        _state["pending"] = True
        return
    _state["pending"] = False
    for module in SERIALIZABLE:
        importlib.import_module(module)


class _CountingLoader(importlib.abc.Loader):
    """A keras_gated submodule's own loader, counting the submodules executing."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # get_source, get_filename, ... of the wrapped loader
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        _state["depth"] += 1
        try:
            self.loader.exec_module(module)
        finally:
            _state["depth"] -= 1
        if _state["pending"] and not _state["depth"]:
            register()


class _Finder(importlib.abc.MetaPathFinder):
    """Finds keras_gated submodules as the other finders do, with `_CountingLoader`."""

    def find_spec(self, name, path, target=None):
        if not name.startswith("keras_gated."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _CountingLoader(spec.loader)
                return spec
        return None


def install():
    """Sets up the registration; without wrapt (a runtime-only install) only if Keras is here."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    try:
        import wrapt
    except ImportError:
        if "keras" in sys.modules:
            register()
    else:
        wrapt.register_post_import_hook(register, "keras")
