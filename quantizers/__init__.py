"""One adapter per output format: each turns the FP16 source into a variant artifact plus a manifest.

Every module here that registers an adapter (core.registry.register_quantizer) is imported with this
package; `*_worker.py` modules are the scripts tools run in their own environments, and are not."""
from __future__ import annotations

import importlib
import pkgutil


def _import_adapters() -> None:
    for m in pkgutil.iter_modules(__path__):
        if not m.name.endswith("_worker"):
            importlib.import_module(f"{__name__}.{m.name}")


_import_adapters()
