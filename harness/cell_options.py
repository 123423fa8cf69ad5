"""Per-cell options of GPU, kernel-check and performance-only runs (device, batch sizes, roles)."""
from __future__ import annotations

from pathlib import Path

from evaluators.kernel_check import QUANTIZED_FORMATS, REFERENCE_RUNTIME, UNQUANTIZED_VARIANTS


def needs_dequant_reference(variant: str, cfg) -> bool:
    """Whether this variant also gets a dequantized-reference cell (only quantized ones, only when checking)."""
    return cfg.eval.kernel_check_tokens > 0 and variant not in UNQUANTIZED_VARIANTS


def is_dequant_reference(fmt: str, runtime: str, device: str) -> bool:
    """transformers reading a quantized format computes with dequantized weights: on a GPU run that
    cell is the exact reference for the kernel checks, and its speed is not that format's speed."""
    return runtime == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS and device != "cpu"


def add_device_options(spec: dict, fmt: str, prepared, cfg, work: Path) -> None:
    s = cfg.eval
    spec["device"] = s.device
    role = "dequantized-reference" if is_dequant_reference(fmt, spec["runtime"], s.device) else "measured"
    spec["role"] = role
    if role == "dequantized-reference" or (spec["runtime"] == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS):
        # transformers computes a quantized format with its weights dequantized to floats: its speed would
        # be fp16's, not the format's, so none is reported for it (a quality reference only)
        spec["speed"] = False
    if s.device != "cpu" and spec.get("speed", True):
        spec["profile_decode"] = True  # where a decoded token's GPU time goes (evaluators/decode_profile.py)
    extra = [b for b in s.decode_batches if b > 1]
    if extra:
        spec["decode_batches"] = extra
    if cfg.synthetic:  # performance only: no perplexity, no KL divergence
        spec["score"] = False
        spec["reference_dir"] = None
        spec["write_reference"] = False
    if s.kernel_check_tokens:
        spec["kernel_check_ids"] = [int(t) for t in prepared.windows.ids.reshape(-1)[: s.kernel_check_tokens]]
        spec["kernel_check_out"] = str(work / "kernel-check" / f"{spec['variant']}__{spec['runtime']}.npy")
