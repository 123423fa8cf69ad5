"""Which adapter makes which variant, and in which order the variants must be built."""
from __future__ import annotations

from core import registry
from core.errors import UserError
from quantizers.base import Quantizer


def make_quantizer(variant: str, awq_recipe) -> Quantizer:
    info = registry.quantizer_for(variant)
    if info is None:
        raise UserError(f"no quantizer makes {variant!r}; `quantcompare list variants` shows what exists")
    return info.make(variant, awq_recipe)


def make_quantizers(variants: tuple[str, ...], awq_recipe) -> list[Quantizer]:
    """Adapters for `variants`, with the upstream artifacts they need, in build order."""
    made: dict[str, Quantizer] = {}
    wanted: list[str] = []

    def add(v: str) -> None:
        q = made.setdefault(v, make_quantizer(v, awq_recipe))
        for dep in q.needs:
            add(dep)
        if v not in wanted:
            wanted.append(v)

    for v in variants:
        add(v)
    return [made[v] for v in wanted]
