"""Names shared by every layer: the reference pair, the artifact formats, and how a results.json orders
its variants (so that reports and the gate need no registry to list them as the run did)."""
from __future__ import annotations

from typing import Callable

# every variant is compared with fp16's weights as the transformers runtime computes them
REFERENCE_VARIANT = "fp16"
REFERENCE_RUNTIME = "transformers"
REFERENCE = (REFERENCE_VARIANT, REFERENCE_RUNTIME)

# artifact formats (Manifest.format) whose weights a kernel reads quantized
QUANTIZED_FORMATS = ("hf-awq-gemm", "hf-compressed-tensors", "gguf")


def variant_key(results: dict) -> Callable[[str], tuple[int, str]]:
    """Sort key of a results.json's variants: its `variant_order` (or the order it lists them in)."""
    order = list(results.get("variant_order") or results.get("variants") or [])
    return lambda v: (order.index(v) if v in order else len(order), v)
