"""Runtimes and quantizers register themselves where they are defined, as lm-eval's models do:

    @register_runtime("llama.cpp", formats=("gguf",), options=LlamaCppOptions, prefix="llama")
    class LlamaCppRuntime(Runtime): ...

    @register_quantizer(variants=("gguf-f16",), needs=("fp16",))
    class GgufF16Quantizer(Quantizer): ...

Adding a runtime or a variant is one new module: `evaluators/backends/<name>_backend.py` or a module in
quantizers/ (both packages import theirs on import), or any module named with `--plugins`."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from core.errors import UserError


@dataclass(frozen=True)
class RuntimeInfo:
    """What the harness needs to know of a runtime without loading it."""

    name: str
    cls: type
    formats: tuple[str, ...]  # artifact formats it reads
    dequant_formats: tuple[str, ...] = ()  # formats it reads only as an exact dequantized reference (kernel checks)
    env: str | None = None  # its own tool environment (.venvs/<env>), None: the harness's
    options: type | None = None  # its options dataclass: its CLI argument group and its [runtime.<name>] section
    prefix: str = ""  # of its options' flags (--<prefix>-<option>)
    default: bool = False  # in the default --runtimes
    order: int = 50  # tables list runtimes by it
    passive_omp: bool = True  # OMP_WAIT_POLICY=PASSIVE in its cells (torch beside other OpenMP code)
    preload: str | None = None  # a module its cell imports before numpy (see evaluators/cell_process.py)
    summary: str = ""

    @property
    def module(self) -> str:
        """Where it is defined: its cell (another process, perhaps another environment) imports this."""
        return self.cls.__module__

    @property
    def section(self) -> str:
        return f"runtime.{self.name}"

    def make_options(self, values: dict | None = None):
        """Its options from a dict (a config section or a cell spec); defaults for what is not given."""
        if self.options is None:
            if values:
                raise UserError(f"runtime {self.name} has no options (got {', '.join(values)})")
            return None
        from core.options import build

        return build(self.options, dict(values or {}), self.section)

    def reads(self, fmt: str, dequant: bool = False) -> bool:
        return fmt in self.formats or (dequant and fmt in self.dequant_formats)


@dataclass(frozen=True)
class KernelTolerance:
    """How far a quantized runtime's logits may land from its dequantized weights' (evaluators/kernel_check.py):
    mean |error| within max_rel_mean_err of the mean |logit|, or within max_err_ratio of what the
    quantization itself did to the same logits; and top-1 agreement where the reference has a clear leader."""

    max_rel_mean_err: float = 0.05
    max_err_ratio: float = 1 / 3
    min_top1: float = 0.90


@dataclass(frozen=True)
class QuantizerInfo:
    """A quantizer adapter and the variants it makes."""

    cls: type
    variants: tuple[str, ...]  # the names it makes (listed by `quantcompare list variants`)
    make: Callable[[str, Any], Any]  # (variant name, AWQ recipe) -> a Quantizer instance
    env: str | None = None  # the tool environment it runs its tool in, None: the harness's
    default: tuple[str, ...] = ()  # which of its variants the default run makes
    same_weights: tuple[str, ...] = ()  # variants that hold the source's weights unchanged (fp16, gguf-f16)
    order: int = 50  # tables list variants by (order, position in `variants`)
    # how far a kernel reading these variants may land from their dequantized weights (evaluators/kernel_check)
    kernel_tolerance: KernelTolerance = KernelTolerance()
    hidden: bool = False  # an intermediate artifact other variants read (never evaluated, not listed)
    matches: Callable[[str], bool] | None = None  # names made from a pattern (gguf-mix-4.9); `variants` lists examples
    summary: str = ""


_RUNTIMES: dict[str, RuntimeInfo] = {}
_QUANTIZERS: list[QuantizerInfo] = []


def register_runtime(name: str, *, formats: tuple[str, ...], **info: Any) -> Callable[[type], type]:
    """Class decorator: the runtime `name` reads `formats` (see RuntimeInfo for the other fields)."""
    def deco(cls: type) -> type:
        old = _RUNTIMES.get(name)
        if old is not None and old.module != cls.__module__:
            raise ValueError(f"runtime {name!r} is registered twice ({old.module}, {cls.__module__})")
        if info.get("options") is not None:
            fields(info["options"])  # a dataclass
        cls.name = name
        _RUNTIMES[name] = RuntimeInfo(name, cls, tuple(formats), **info)
        return cls
    return deco


def register_quantizer(*, variants: tuple[str, ...], make: Callable | None = None, **info: Any) -> Callable[[type], type]:
    """Class decorator: the adapter makes `variants`; `make(variant, recipe)` builds one (default: cls())."""
    def deco(cls: type) -> type:
        taken = {v for q in _QUANTIZERS if q.cls.__qualname__ != cls.__qualname__ for v in q.variants}
        clash = taken & set(variants)
        if clash:
            raise ValueError(f"variant(s) {', '.join(sorted(clash))} registered twice")
        _QUANTIZERS[:] = [q for q in _QUANTIZERS if q.cls.__qualname__ != cls.__qualname__]
        _QUANTIZERS.append(QuantizerInfo(cls, tuple(variants), make or (lambda v, recipe: cls()), **info))
        return cls
    return deco


def runtimes() -> dict[str, RuntimeInfo]:
    return dict(sorted(_RUNTIMES.items(), key=lambda kv: kv[1].order))


def runtime(name: str) -> RuntimeInfo:
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise UserError(f"unknown runtime {name!r}; choose from {', '.join(runtimes())}") from None


def default_runtimes() -> tuple[str, ...]:
    return tuple(n for n, r in runtimes().items() if r.default)


def quantizers() -> list[QuantizerInfo]:
    return sorted(_QUANTIZERS, key=lambda q: q.order)


def quantizer_for(variant: str) -> QuantizerInfo | None:
    return next((q for q in _QUANTIZERS if variant in q.variants or (q.matches is not None and q.matches(variant))), None)


def is_variant(name: str) -> bool:
    q = quantizer_for(name)
    return q is not None and not q.hidden


def kernel_tolerance(variant: str) -> KernelTolerance:
    q = quantizer_for(variant)
    return q.kernel_tolerance if q else KernelTolerance()


def default_variants() -> tuple[str, ...]:
    return tuple(v for q in quantizers() for v in q.default)


def same_weights_variants() -> tuple[str, ...]:
    return tuple(v for q in quantizers() for v in q.same_weights)


def variant_order(name: str) -> tuple[int, int, str]:
    """Sort key for tables and plots: each adapter's order, then its own listing order."""
    q = quantizer_for(name)
    if q is None:
        return (999, 0, name)
    return (q.order, q.variants.index(name) if name in q.variants else len(q.variants), name)


BUILT_IN_PACKAGES = ("evaluators", "quantizers")  # their code is keyed by the harness itself


def plugin_source_sha256(cls: type) -> str | None:
    """sha256 of the source of a runtime or quantizer defined outside the built-in packages (a --plugins
    module; a package's every .py file), so editing it invalidates what it measured or built; None for
    built-in classes, None too where no source file exists."""
    import hashlib
    import sys
    from pathlib import Path

    if cls.__module__.split(".")[0] in BUILT_IN_PACKAGES:
        return None
    f = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if not f:
        return None
    path = Path(f)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
