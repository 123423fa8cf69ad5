"""Read AutoAWQ GEMM checkpoints (qweight / qzeros / scales) back into float weights, exactly.

The GEMM layout: qweight [in, out/8] int32 and qzeros [in/group, out/8] int32 each hold eight
4-bit values per int32, nibble i (bits 4i..4i+3) being column 8c + ORDER[i] of its 8-column block;
scales [in/group, out] fp16. Weight = (q - z) * s, per input group. This is the format's
definition (the same arithmetic as AutoAWQ's awq.utils.packing_utils.dequantize_gemm, checked in
tests/test_awq_gemm.py against that function), not a quantizer."""
from __future__ import annotations

import torch

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """[rows, cols/8] int32 -> [rows, cols] int32 values in 0..15, AWQ column order undone."""
    rows, packed_cols = packed.shape
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=packed.device)
    nibbles = torch.bitwise_and(torch.bitwise_right_shift(packed[:, :, None], shifts[None, None, :]), 0xF)
    out = torch.empty(rows, packed_cols, 8, dtype=torch.int32, device=packed.device)
    out[:, :, list(AWQ_ORDER)] = nibbles  # nibble i holds column ORDER[i] of the block
    return out.reshape(rows, packed_cols * 8)


def dequantize_gemm(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """Float weight in nn.Linear's [out, in] layout (float32)."""
    q = unpack_int4(qweight)  # [in, out]
    z = unpack_int4(qzeros).repeat_interleave(group_size, dim=0)  # [in, out]
    s = scales.to(torch.float32).repeat_interleave(group_size, dim=0)
    return ((q - z).to(torch.float32) * s).t().contiguous()


def read_awq_checkpoint(path, device: str = "cpu"):
    """An AutoAWQ GEMM checkpoint folder: (the model's config without its quantization_config, the group
    size, every tensor of its safetensors files on `device`). 4-bit GEMM only."""
    from safetensors.torch import load_file

    config, qcfg = _read_config(path)
    if qcfg.get("bits", qcfg.get("w_bit", 4)) != 4 or str(qcfg.get("version", "gemm")).lower() != "gemm":
        raise ValueError(f"only 4-bit AWQ GEMM checkpoints are supported, got {qcfg}")
    group = int(qcfg.get("group_size", qcfg.get("q_group_size")))
    state: dict = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(f, device=device))
    return config, group, state


def read_awq_config(path):
    """The model's config of an AWQ checkpoint folder, without its quantization_config."""
    return _read_config(path)[0]


def _read_config(path):
    import json

    from transformers import AutoConfig

    cfg_dict = json.loads((path / "config.json").read_text())
    qcfg = cfg_dict.pop("quantization_config")
    return AutoConfig.for_model(**cfg_dict), qcfg
