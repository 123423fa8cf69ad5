"""Fused projections, made at load time from the checkpoint's tensors, as serving engines hold them: a
layer's q, k and v projections as one [q + k + v, hidden] weight, its gate and up projections as one
[2 × intermediate, hidden] weight. At one token a GEMV over 6,144 rows runs near the memory's speed
where three GEMVs of 4,096, 1,024 and 1,024 rows do not (issue 23's probe: 35.2 µs separately, 9.1 µs
fused, on an H200).

Dense weights are concatenated and the model's own modules are pointed into the fused tensor (views),
so no weight is held twice and transformers' forward over the model computes the same weights. AWQ INT4
weights are concatenated before packing (int4_tinygemm.load_awq_int4): qweight, qzeros and scales along
the output dimension, which AWQ's layout keeps in blocks of eight columns per int32."""
from __future__ import annotations

import torch

from evaluators.backends.fused_decoder import Proj

# (parent module, member projections, fused name): the Llama family's names
GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("self_attn", ("q_proj", "k_proj", "v_proj"), "qkv"),
    ("mlp", ("gate_proj", "up_proj"), "gate_up"),
)
SINGLES: tuple[tuple[str, str, str], ...] = (("self_attn", "o_proj", "o"), ("mlp", "down_proj", "down"))


def fuse_dense_group(parent, members: tuple[str, ...]) -> Proj:
    """Concatenate the members' weights (and biases) and make each member's parameters views of them."""
    mods = [getattr(parent, n) for n in members]
    if not all(isinstance(m, torch.nn.Linear) for m in mods):
        raise TypeError(f"{type(parent).__name__}: {members} are not all dense linear layers")
    weight = torch.cat([m.weight.data for m in mods])
    with_bias = any(m.bias is not None for m in mods)
    bias = torch.cat([m.bias.data if m.bias is not None else m.weight.new_zeros(m.out_features) for m in mods]) \
        if with_bias else None
    at = 0
    for m in mods:
        n = m.out_features
        m.weight = torch.nn.Parameter(weight[at:at + n], requires_grad=False)
        if with_bias:
            m.bias = torch.nn.Parameter(bias[at:at + n], requires_grad=False)
        at += n
    return Proj(weight, bias)


def single(mod) -> Proj:
    """A projection left as it is: dense (nn.Linear) or INT4 (int4_tinygemm.Int4Linear)."""
    if isinstance(mod, torch.nn.Linear):
        return Proj(mod.weight, mod.bias)
    return Proj(mod.weight_int4, None, mod.scales_and_zeros)


def layer_projections(model, fused_int4: list[dict[str, Proj]] | None = None) -> list[dict[str, Proj]]:
    """Per decoder layer, its 'qkv', 'gate_up', 'o' and 'down' projections. fused_int4: the INT4 groups
    the AWQ loader fused before packing; otherwise the dense groups are fused here."""
    out = []
    cuda = next(model.parameters()).device.type == "cuda"
    for i, layer in enumerate(model.model.layers):
        p: dict[str, Proj] = {}
        for parent_name, members, name in GROUPS:
            parent = getattr(layer, parent_name)
            p[name] = fused_int4[i][name] if fused_int4 else fuse_dense_group(parent, members)
        for parent_name, member, name in SINGLES:
            p[name] = single(getattr(getattr(layer, parent_name), member))
        out.append(p)
        if cuda and not fused_int4:
            # the unfused weights just freed go back to the driver: the allocator could not reuse their
            # blocks for the larger fused tensors, and would hold both (+3.6 GB for Qwen3-4B on an H200)
            torch.cuda.empty_cache()
    return out


def awq_groups(state: dict, n_layers: int) -> list[tuple[int, str, list[str]]]:
    """(layer index, fused name, member prefixes) of every group whose members are all AWQ-quantized."""
    found = []
    for i in range(n_layers):
        for parent_name, members, name in GROUPS:
            prefixes = [f"model.layers.{i}.{parent_name}.{m}" for m in members]
            if all(p + ".qweight" in state for p in prefixes):
                found.append((i, name, prefixes))
    return found


def concat_awq(state: dict, prefixes: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """The members' qweight, qzeros and scales concatenated along the output dimension (taken out of
    `state`), and each member's output size."""
    qw, qz, sc = [], [], []
    for p in prefixes:
        qw.append(state.pop(p + ".qweight"))
        qz.append(state.pop(p + ".qzeros"))
        sc.append(state.pop(p + ".scales"))
    return torch.cat(qw, dim=1), torch.cat(qz, dim=1), torch.cat(sc, dim=1), [s.shape[1] for s in sc]
