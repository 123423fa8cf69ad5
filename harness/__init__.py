"""quantcompare harness: CLI, run configuration, pipeline, cache, results schema, release gate."""

from harness.plugins import load_builtin as _load_builtin

_load_builtin()  # the built-in runtimes and quantizers register themselves (core.registry)
