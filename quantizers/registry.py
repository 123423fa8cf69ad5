"""Which adapter makes which variant."""
from __future__ import annotations

from quantizers.awq_int4 import AwqQuantizer
from quantizers.base import Quantizer
from quantizers.fp16 import Fp16Quantizer
from quantizers.gguf import GgufF16Quantizer, GgufQ4KMQuantizer


def make_quantizers(variants: tuple[str, ...], awq_recipe) -> list[Quantizer]:
    """Adapters for `variants`, with the upstream variants they need, in build order."""
    table = {
        "fp16": Fp16Quantizer(),
        "gguf-f16": GgufF16Quantizer(),
        "gguf-q4_k_m": GgufQ4KMQuantizer(),
        "awq-int4": AwqQuantizer(awq_recipe),
    }
    wanted: list[str] = []

    def add(v: str) -> None:
        for dep in table[v].needs:
            add(dep)
        if v not in wanted:
            wanted.append(v)

    for v in variants:
        add(v)
    return [table[v] for v in wanted]
