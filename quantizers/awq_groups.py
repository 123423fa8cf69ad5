"""Pick the AWQ group size a model's layer widths allow (no torch needed)."""
from __future__ import annotations

KERNEL_GROUP_SIZES = (128, 64, 32)  # what AWQ GEMM / Marlin kernels accept


def linear_in_features(config: dict) -> dict[str, int]:
    """Input widths of the decoder's quantized linears, from an HF config of the Llama family."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    return {
        "q/k/v_proj, gate/up_proj": hidden,
        "o_proj": heads * head_dim,
        "down_proj": int(config["intermediate_size"]),
    }


def choose_group_size(config: dict, requested: int) -> tuple[int, str | None]:
    """Largest kernel-supported group size <= requested that divides every layer's input width.

    Returns (group_size, note); note is None when the requested size fits."""
    widths = linear_in_features(config)
    if all(w % requested == 0 for w in widths.values()):
        return requested, None
    for g in KERNEL_GROUP_SIZES:
        if g <= requested and all(w % g == 0 for w in widths.values()):
            bad = ", ".join(f"{k}={w}" for k, w in widths.items() if w % requested)
            return g, (
                f"group size {requested} does not divide every layer's input width ({bad}); "
                f"used {g}, the largest group size AWQ kernels accept that divides them all"
            )
    raise ValueError(f"no AWQ group size in {KERNEL_GROUP_SIZES} divides the layer widths {widths}")
