"""Which adapter makes which variant."""
from __future__ import annotations

from harness.config import parse_gguf_variant
from quantizers.awq_int4 import AwqQuantizer
from quantizers.base import Quantizer
from quantizers.fp16 import Fp16Quantizer
from quantizers.gguf import GgufF16Quantizer, GgufTypeQuantizer
from quantizers.gguf_imatrix import ImatrixBuilder
from quantizers.llama_tools import IMATRIX_VARIANT


def make_quantizer(variant: str, awq_recipe) -> Quantizer:
    if variant == "fp16":
        return Fp16Quantizer()
    if variant == "gguf-f16":
        return GgufF16Quantizer()
    if variant == IMATRIX_VARIANT:
        return ImatrixBuilder(chunks=awq_recipe.calib_samples, n_ctx=awq_recipe.calib_seq_len)
    if variant == "awq-int4":
        return AwqQuantizer(awq_recipe)
    g = parse_gguf_variant(variant)
    if g is None:
        raise ValueError(f"no quantizer makes {variant!r}")
    return GgufTypeQuantizer(*g)


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
