"""Runtime backends behind one small interface (evaluators.backends.base.Runtime).

Every `<name>_backend.py` module here registers its runtime (core.registry.register_runtime) and is
imported with this package; a runtime defined elsewhere is imported by name (`--plugins`, and in its
cell through CellSpec.runtime_module). Backend modules import their engine only when a model loads."""
from __future__ import annotations

import importlib
import pkgutil

from core import registry
from evaluators.backends.base import Runtime


def _import_backends() -> None:
    for m in pkgutil.iter_modules(__path__):
        if m.name.endswith("_backend"):
            importlib.import_module(f"{__name__}.{m.name}")


_import_backends()


def make_runtime(spec) -> Runtime:
    """The runtime a cell spec (core.cellspec.CellSpec) names, built with its options."""
    if spec.runtime_module:
        importlib.import_module(spec.runtime_module)
    info = registry.runtime(spec.runtime)
    return info.cls.from_spec(spec, info.make_options(spec.options))
