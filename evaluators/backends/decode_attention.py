"""Attention for the fused decoder (evaluators/backends/fused_decoder.py): one rule, several kernels.

Every kind computes softmax(q·kᵀ·scale + mask)·v with grouped-query heads (query head i reads key/value
head i // group) and a boolean mask (True: the key is visible). Several query tokens (prefill, scoring)
always go through SDPA over keys repeated per query head, as transformers does. One query token (a decode
step over the static cache) goes through the kind chosen:

- `sdpa`: the same repeated keys and SDPA, PyTorch picking the backend (what transformers' modules do);
- `sdpa-grouped`: no repeated keys: the `group` query heads of one key/value head are the rows of one
  SDPA call (one token's queries share its position, so no causal mask is needed among them);
- `sdpa-efficient`: the grouped layout forced onto SDPA's memory-efficient backend (CUDA only);
- `matmul`: the grouped layout as two batched matmuls and a float32 softmax, left to inductor to fuse;
- `flex`: FlexAttention, whose compiled form has a decoding kernel for short queries.

SDPA's flash backend is not a kind: it takes no mask, and a static cache needs one (its unfilled slots),
unless the cache is cut to its filled length, which changes the step's shapes at every token."""
from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("sdpa", "sdpa-grouped", "sdpa-efficient", "matmul", "flex")
CUDA_ONLY = ("sdpa-efficient",)


def check_kind(kind: str, device: str) -> None:
    """A clear error for a kind that does not exist or cannot run on `device`."""
    if kind not in KINDS:
        raise ValueError(f"unknown decode attention {kind!r}: one of {', '.join(KINDS)}")
    if kind in CUDA_ONLY and not device.startswith("cuda"):
        raise ValueError(f"decode attention {kind!r} is a CUDA kernel; on {device} use one of "
                         f"{', '.join(k for k in KINDS if k not in CUDA_ONLY)}")


def repeat_kv(x: torch.Tensor, group: int) -> torch.Tensor:
    """[B, Hkv, S, D] -> [B, Hkv*group, S, D], key/value head i serving query heads i*group ... i*group+group-1."""
    if group == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, group, s, d).reshape(b, h * group, s, d)


def attend_many(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                scale: float) -> torch.Tensor:
    """q [B, H, T, D]; k, v [B, Hkv, S, D]; mask [B, 1, T, S] bool, or None for causal over T == S."""
    group = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, group), repeat_kv(v, group)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] > 1, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, scale: float,
               kind: str) -> torch.Tensor:
    """One query token: q [B, H, 1, D]; k, v [B, Hkv, S, D]; mask [B, 1, 1, S] bool -> [B, H, 1, D]."""
    if kind == "sdpa":
        return attend_many(q, k, v, mask, scale)
    if kind == "flex":
        return _flex(q, k, v, mask, scale)
    b, h, _, d = q.shape
    hkv = k.shape[1]
    qg = q.reshape(b, hkv, h // hkv, d)  # the query heads of one key/value head as rows
    if kind == "matmul":
        s = torch.matmul(qg, k.transpose(-1, -2)).float() * scale
        s = s.masked_fill(~mask, float("-inf"))
        out = torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)
    elif kind == "sdpa-grouped":
        out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=scale)
    elif kind == "sdpa-efficient":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
            out = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask, scale=scale)
    else:
        raise ValueError(f"unknown decode attention {kind!r}")
    return out.reshape(b, h, 1, d)


def _flex(q, k, v, mask, scale):
    from torch.nn.attention.flex_attention import flex_attention

    visible = mask[:, 0, 0]  # [B, S]: one query token, one row of the mask per sequence

    def score_mod(score, b, h, q_idx, kv_idx):
        return torch.where(visible[b, kv_idx], score, -float("inf"))

    return flex_attention(q, k, v, score_mod=score_mod, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
