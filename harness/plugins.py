"""Load what registers runtimes and quantizers: the built-in packages (on importing harness), and modules
named by `--plugins`, a config file's [run] plugins or $QC_PLUGINS (comma-separated), as lm-eval's
--include_path does."""
from __future__ import annotations

import importlib
import os

from core.errors import UserError


def load_builtin() -> None:
    import evaluators.backends  # noqa: F401  (registers the runtimes)
    import quantizers  # noqa: F401  (registers the quantizers)


def load(extra: tuple[str, ...] | list[str] = ()) -> None:
    load_builtin()
    env = [m.strip() for m in os.environ.get("QC_PLUGINS", "").split(",") if m.strip()]
    for name in [*env, *extra]:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError(f"plugin module {name!r} cannot be imported: {e}") from None
