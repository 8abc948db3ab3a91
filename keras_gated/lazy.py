"""Public names that load their module on first use (PEP 562), for the package `__init__`s.

__getattr__, __dir__, __all__ = lazy.attach(__name__, {"name": "package.module", ...})
"""

import importlib
import sys


def attach(package, public):
    """`__getattr__`, `__dir__` and `__all__` for `package`, whose names `public` maps to the
    (absolute) modules that define them."""

    def __getattr__(name):
        if name in public:
            return getattr(importlib.import_module(public[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__, sorted(public)
