"""AWQ GEMM checkpoints run through PyTorch's own INT4 weight-only kernel ("tinygemm":
torch.ops.aten._weight_int4pack_mm on CUDA, _weight_int4pack_mm_for_cpu on CPU), as gpt-fast and
torchao's tensor-core-tiled int4 layout use it.

The AWQ file stays the artifact; only its packing changes at load time. The kernel dequantizes
w = (q - 8) * scale + zero per (group, output column) with `zero` a float, and AWQ defines
w = (q - z) * s with an integer zero point z, so zero = (8 - z) * s gives the same weights: the same
4-bit values q, the same groups, scales and zero points. On CUDA the kernel takes bfloat16 activations,
scales and zeros only (int4mm.cu checks it), so there the scales are rounded from float16 to bfloat16.
`check_layer` measures the result against the exactly dequantized weights at load time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evaluators.backends.awq_gemm import dequantize_gemm, read_awq_checkpoint, unpack_int4

INNER_K_TILES = 8  # 16-byte loads of packed weights (gpt-fast's and torchao's choice)
GROUP_SIZES = (32, 64, 128, 256)  # the kernel's
CUDA_DTYPE = torch.bfloat16  # the only activation dtype the CUDA kernel takes


@dataclass
class PackedInt4:
    """One linear layer in the kernel's layout."""

    weight: torch.Tensor  # the packing op's output (device-specific layout)
    scales_and_zeros: torch.Tensor  # [in/group, out, 2]: scale, float zero
    group: int
    in_features: int
    out_features: int


def kernel_name(device: str) -> str:
    return ("aten._weight_int4pack_mm (CUDA tinygemm)" if device.startswith("cuda")
            else "aten._weight_int4pack_mm_for_cpu")


def pack_awq(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, group: int,
             dtype: torch.dtype, inner_k_tiles: int = INNER_K_TILES, high_first: bool = True) -> PackedInt4:
    """AWQ GEMM tensors (on the target device) -> the kernel's packed weight and scales/zeros.
    high_first: on CUDA, the even input index goes to a byte's high nibble (torch >= 2.5, torchao)."""
    if group not in GROUP_SIZES:
        raise ValueError(f"group size {group} is not one of the INT4 kernel's {GROUP_SIZES}")
    q = unpack_int4(qweight).t().contiguous()  # [out, in] int32 values 0..15
    out_f, in_f = q.shape
    if in_f % (inner_k_tiles * 16) or out_f % 8:
        raise ValueError(f"a {in_f}x{out_f} layer does not fit the INT4 kernel's tiles "
                         f"(in % {inner_k_tiles * 16}, out % 8)")
    z = unpack_int4(qzeros).to(torch.float32)  # [in/group, out]
    s = scales.to(torch.float32)
    szeros = torch.stack([s, (8.0 - z) * s], dim=-1).to(dtype).contiguous()
    if q.device.type == "cuda":
        hi, lo = (q[:, ::2], q[:, 1::2]) if high_first else (q[:, 1::2], q[:, ::2])
        u8 = ((hi << 4) | lo).to(torch.uint8).contiguous()  # uint8 [out, in/2]
        w = torch.ops.aten._convert_weight_to_int4pack(u8, inner_k_tiles)
    else:
        w = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, inner_k_tiles)
    return PackedInt4(w, szeros, group, in_f, out_f)


class Int4Linear(torch.nn.Module):
    """nn.Linear's interface over the packed INT4 weight (no bias: AWQ's linears here have none)."""

    def __init__(self, p: PackedInt4) -> None:
        super().__init__()
        self.in_features, self.out_features, self.group = p.in_features, p.out_features, p.group
        self.register_buffer("weight_int4", p.weight)
        self.register_buffer("scales_and_zeros", p.scales_and_zeros)
        self._cuda = p.weight.device.type == "cuda"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self._cuda:
            y = torch.ops.aten._weight_int4pack_mm(x2.contiguous(), self.weight_int4, self.group, self.scales_and_zeros)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2.contiguous(), self.weight_int4, self.group,
                                                           self.scales_and_zeros)
        return y.reshape(*shape[:-1], self.out_features)

    def rows(self, start: int, stop: int) -> "Int4Linear":
        """Output rows start..stop as a layer sharing this one's packed weight (a view). The packing keeps
        blocks of output rows apart: 8 on CUDA (tinygemm's n-tiles), 64 on CPU (its kernel's BLOCK_N, the
        last block shorter); a view must start and end on them. Its scales and zeros are copied."""
        block = 8 if self._cuda else 64
        if start % block or (stop % block and stop != self.out_features):
            raise ValueError(f"rows {start}..{stop} of a packed INT4 layer: the packing keeps output rows in "
                             f"blocks of {block}")
        w = self.weight_int4[start // 8: stop // 8] if self._cuda else self.weight_int4[start:stop]
        sz = self.scales_and_zeros[:, start:stop].contiguous()
        return Int4Linear(PackedInt4(w, sz, self.group, self.in_features, stop - start))

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, group={self.group}"


def check_layer(layer: Int4Linear, qweight, qzeros, scales, group: int, seed: int = 0) -> dict:
    """The kernel against the exactly dequantized weight (float32) on 8 random rows: relative error."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(8, layer.in_features, generator=g).to(layer.weight_int4.device)
    dtype = layer.scales_and_zeros.dtype
    ref = x.float() @ dequantize_gemm(qweight, qzeros, scales, group).t()
    got = layer(x.to(dtype)).float()
    rel = float((got - ref).norm() / ref.norm())
    return {"rel_err": rel, "shape": [layer.in_features, layer.out_features]}


def load_awq_int4(path: Path, device: str, dtype: torch.dtype, check_tol: float = 2e-2, fuse: bool = False):
    """An HF causal LM from an AWQ GEMM checkpoint whose quantized linears are Int4Linear; every other
    weight (embeddings, norms, head) in `dtype`. Built on the meta device, so no full-precision copy of
    the quantized layers is ever allocated. fuse: each layer's q/k/v and gate/up tensors concatenated
    before packing (evaluators/backends/fusion.py), the model's modules row-views of the fused packing.
    Returns (model, facts, fused: per layer {'qkv', 'gate_up'} Proj, or None)."""
    from transformers import AutoModelForCausalLM

    from evaluators.backends import fusion
    from evaluators.backends.fused_decoder import Proj

    config, group, state = read_awq_checkpoint(path, device)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    packer = _CheckedPacker(group, dtype, device, check_tol)
    n_quant, fused = 0, None
    if fuse:
        groups = fusion.awq_groups(state, config.num_hidden_layers)
        if len(groups) != config.num_hidden_layers * len(fusion.GROUPS):
            raise ValueError("fusing needs every layer's q/k/v and gate/up projections quantized")
        fused = [{} for _ in range(config.num_hidden_layers)]
        for g, (layer, name, prefixes) in enumerate(groups):
            qw, qz, sc, sizes = fusion.concat_awq(state, prefixes)
            whole = packer.pack(qw, qz, sc, f"model.layers.{layer}.{name}")
            fused[layer][name] = Proj(whole.weight_int4, None, whole.scales_and_zeros)
            at = 0
            for p, n in zip(prefixes, sizes):
                part = whole.rows(at, at + n)
                if g == 0:  # the first group's views against their own dequantized weights
                    packer.check_view(part, qw, qz, sc, at, n, p)
                _install(model, p, part, config)
                at += n
                n_quant += 1
            if device.startswith("cuda"):  # the group's unpacked transients back to the driver (see fusion.py)
                torch.cuda.empty_cache()
    for name in [n for n in state if n.endswith(".qweight")]:
        prefix = name[: -len(".qweight")]
        qw, qz, sc = state.pop(name), state.pop(prefix + ".qzeros"), state.pop(prefix + ".scales")
        _install(model, prefix, packer.pack(qw, qz, sc, prefix), config)
        n_quant += 1
    dense = {name: t.to(dtype) if t.is_floating_point() else t for name, t in state.items()}
    missing, unexpected = model.load_state_dict(dense, strict=False, assign=True)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)
               and not m.endswith((".weight_int4", ".scales_and_zeros"))]
    if missing or unexpected:
        raise ValueError(f"AWQ checkpoint does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    _rebuild_rotary(model, config, device)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"tensors left unloaded after reading the AWQ checkpoint: {left[:3]}")
    facts = {"quantized_linears": n_quant, "group_size": group, "first_layer_check": packer.first_check}
    if fuse:
        facts["fused_view_check"] = packer.view_check
    return model.eval(), facts, fused


def _install(model, prefix: str, layer: "Int4Linear", config) -> None:
    parent_name, _, child = prefix.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = getattr(parent, child)
    if not isinstance(old, torch.nn.Linear) or old.bias is not None:
        raise ValueError(f"{prefix} is not a bias-free linear layer in {config.model_type}")
    setattr(parent, child, layer)


class _CheckedPacker:
    """Packs AWQ tensors for the kernel; the first layer packed is checked against its dequantized weights
    (and, where the CUDA packing op's nibble order is the other one, repacked that way)."""

    def __init__(self, group: int, dtype, device: str, tol: float) -> None:
        self.group, self.dtype, self.device, self.tol = group, dtype, device, tol
        self.high_first, self.first_check, self.view_check = True, None, None

    def pack(self, qw, qz, sc, where: str) -> "Int4Linear":
        layer = Int4Linear(pack_awq(qw, qz, sc, self.group, self.dtype, high_first=self.high_first))
        if self.first_check is None:
            check = check_layer(layer, qw, qz, sc, self.group)
            if not check["rel_err"] < self.tol and self.device.startswith("cuda"):
                # the CUDA packing op's nibble order changed once (torch 2.5): the other order, if it is exact
                other = Int4Linear(pack_awq(qw, qz, sc, self.group, self.dtype, high_first=False))
                c2 = check_layer(other, qw, qz, sc, self.group)
                if c2["rel_err"] < self.tol:
                    layer, check, self.high_first = other, dict(c2, nibble_order="low first"), False
            if not check["rel_err"] < self.tol:
                raise RuntimeError(f"the INT4 kernel disagrees with the AWQ weights of {where}: relative error "
                                   f"{check['rel_err']:.3g} (tolerance {self.tol})")
            self.first_check = dict(check, layer=where)
        return layer

    def check_view(self, part: "Int4Linear", qw, qz, sc, at: int, n: int, where: str) -> None:
        cols = slice(at // 8, (at + n) // 8)  # AWQ packs eight output columns per int32
        check = check_layer(part, qw[:, cols], qz[:, cols], sc[:, at:at + n], self.group)
        if not check["rel_err"] < self.tol:
            raise RuntimeError(f"a row-view of the fused INT4 packing disagrees with {where}'s weights: relative "
                               f"error {check['rel_err']:.3g}")
        worst = self.view_check["rel_err"] if self.view_check else -1.0
        if check["rel_err"] > worst:
            self.view_check = dict(check, layer=where)


def _rebuild_rotary(model, config, device: str) -> None:
    """Rotary embeddings keep computed (non-persistent) buffers that a meta-built model lacks: made anew."""
    for name, mod in list(model.named_modules()):
        if type(mod).__name__.endswith("RotaryEmbedding"):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            with torch.device(device):
                setattr(parent, child, type(mod)(config=config))
