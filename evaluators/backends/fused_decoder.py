"""A decoder of the Llama family (llama, mistral, qwen2, qwen3) in plain torch over fused projections, as
serving engines run it: one q/k/v projection and one gate/up projection per layer (evaluators/backends/
fusion.py makes them at load time from the checkpoint's tensors), RMSNorm, RoPE from the model's own
rotary module, and attention through evaluators/backends/decode_attention.py.

One function, `layer_forward`, runs a layer in every mode: without a cache (scoring), over a cache that
grows (batched generations), and over a static cache written at given slots (prefill and the compiled
one-token step). The weights are the transformers model's own tensors (norms, embeddings, head) or
their concatenations; nothing is copied twice (fusion.py points the model's modules into the fused
tensors), so transformers' forward over the same model stays the reference the checks compare with."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from evaluators.backends.decode_attention import attend_many, attend_one

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")


def unsupported_reason(config) -> str | None:
    """Why the fused decoder cannot run this model (None: it can)."""
    mt = getattr(config, "model_type", "")
    if mt not in ARCHITECTURES:
        return f"architecture {mt!r} is not one of the fused decoder's ({', '.join(ARCHITECTURES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (the fused decoder's MLP is SwiGLU)"
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return "sliding-window attention layers"
    if mt == "mistral" and getattr(config, "sliding_window", None):
        return "sliding-window attention"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type")) == "dynamic":
        return "dynamic RoPE scaling (depends on the sequence's length)"
    return None


@dataclass
class Proj:
    """One projection, fused or not: a dense [out, in] weight, or a packed INT4 weight with its scales and
    zeros (torch's tinygemm layout, evaluators/backends/int4_tinygemm.py)."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    scales_and_zeros: torch.Tensor | None = None

    def parts(self) -> tuple:
        return (self.weight, self.bias, self.scales_and_zeros)


class LayerWeights(NamedTuple):
    """One decoder layer's tensors (projections as Proj.parts() tuples: tensors only, so one compiled
    function serves every layer)."""

    ln1: torch.Tensor
    qkv: tuple
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    o: tuple
    ln2: torch.Tensor
    gate_up: tuple
    down: tuple


@dataclass(frozen=True)
class Shape:
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    eps: float
    scale: float
    int4_group: int = 0  # the INT4 weights' group size (0: dense)
    cuda: bool = False
    attention: str = "sdpa"  # the one-token attention kind (decode_attention.KINDS)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """transformers' LlamaRMSNorm, to the rounding: float32 statistics, the weight applied in x's dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def project(x: torch.Tensor, p: tuple, sh: Shape) -> torch.Tensor:
    w, b, sz = p
    if sz is None:
        return F.linear(x, w, b)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    mm = torch.ops.aten._weight_int4pack_mm if sh.cuda else torch.ops.aten._weight_int4pack_mm_for_cpu
    y = mm(x2, w, sh.int4_group, sz)
    if b is not None:
        y = y + b
    return y.reshape(*x.shape[:-1], y.shape[-1])


def layer_forward(sh: Shape, lw: LayerWeights, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                  mask: torch.Tensor | None, kv: tuple | None, slots: torch.Tensor | None):
    """h [B, T, hidden] -> (h, keys, values). kv and slots: a static cache written at `slots` and read
    whole; kv alone: past keys/values the new ones are appended to; neither: the T tokens alone.
    mask [B, 1, T, S] bool (None: causal over the T tokens)."""
    b, t, _ = h.shape
    nq, nk = sh.heads * sh.head_dim, sh.kv_heads * sh.head_dim
    q, k, v = project(rms_norm(h, lw.ln1, sh.eps), lw.qkv, sh).split([nq, nk, nk], dim=-1)
    q, k = q.view(b, t, sh.heads, sh.head_dim), k.view(b, t, sh.kv_heads, sh.head_dim)
    if lw.q_norm is not None:
        q, k = rms_norm(q, lw.q_norm, sh.eps), rms_norm(k, lw.k_norm, sh.eps)
    q, k = rotate(q.transpose(1, 2), cos, sin), rotate(k.transpose(1, 2), cos, sin)
    v = v.view(b, t, sh.kv_heads, sh.head_dim).transpose(1, 2)
    if kv is not None and slots is not None:
        kv[0].index_copy_(2, slots, k)
        kv[1].index_copy_(2, slots, v)
        k, v = kv
    elif kv is not None:
        k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
    if t == 1 and mask is not None:
        a = attend_one(q, k, v, mask, sh.scale, sh.attention)
    else:
        a = attend_many(q, k, v, mask, sh.scale)
    h = h + project(a.transpose(1, 2).reshape(b, t, nq), lw.o, sh)
    g, u = project(rms_norm(h, lw.ln2, sh.eps), lw.gate_up, sh).split([sh.intermediate] * 2, dim=-1)
    return h + project(F.silu(g) * u, lw.down, sh), k, v


class FusedDecoder:
    """The model's forward over fused layers; `layer` is layer_forward, or a compiled form of it."""

    def __init__(self, model, shape: Shape, layers: list[LayerWeights]) -> None:
        inner = model.model
        self.shape, self.layers = shape, layers
        self.embed = inner.embed_tokens.weight
        self.norm = inner.norm.weight
        self.head = model.get_output_embeddings().weight
        self.dtype, self.device = self.embed.dtype, self.embed.device
        self.rotary = inner.rotary_emb
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        self._cos = self._sin = None
        self.layer = self.eager_layer

    def eager_layer(self, *args):
        return layer_forward(self.shape, *args)

    @classmethod
    def from_model(cls, model, projections: list[dict[str, Proj]], attention: str) -> "FusedDecoder":
        """projections: per layer, the Proj of 'qkv', 'o', 'gate_up' and 'down' (fusion.py)."""
        c = model.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        sz = projections[0]["qkv"].scales_and_zeros
        group = 0 if sz is None else c.hidden_size // sz.shape[0]  # [in/group, out, 2]
        shape = Shape(c.num_attention_heads, c.num_key_value_heads, head_dim, c.intermediate_size, c.rms_norm_eps,
                      head_dim ** -0.5, group, model.device.type == "cuda", attention)
        layers = []
        for layer, p in zip(model.model.layers, projections):
            attn = layer.self_attn
            qn, kn = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
            layers.append(LayerWeights(layer.input_layernorm.weight, p["qkv"].parts(),
                                       None if qn is None else qn.weight, None if kn is None else kn.weight,
                                       p["o"].parts(), layer.post_attention_layernorm.weight, p["gate_up"].parts(),
                                       p["down"].parts()))
        return cls(model, shape, layers)

    def rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin [B, 1, T, head_dim] at positions [B, T], from a table the model's rotary module made."""
        need = int(positions.max()) + 1 if positions.numel() else 1
        if self._cos is None or self._cos.shape[0] < need:
            self.ensure_rope(need)
        return self._cos[positions][:, None], self._sin[positions][:, None]

    def ensure_rope(self, n: int) -> bool:
        """A cos/sin table of at least n positions; True when it had to be made anew (its storage moved, so a
        CUDA graph captured over the old one must not be replayed)."""
        if self._cos is not None and self._cos.shape[0] >= n:
            return False
        n = max(n, 1024, 0 if self._cos is None else 2 * self._cos.shape[0])
        pos = torch.arange(n, device=self.device)[None]
        cos, sin = self.rotary(torch.empty(0, dtype=self.dtype, device=self.device), pos)
        self._cos, self._sin = cos[0], sin[0]
        return True

    def new_cache(self, batch: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        sh = self.shape
        return [(torch.zeros(batch, sh.kv_heads, length, sh.head_dim, dtype=self.dtype, device=self.device),
                 torch.zeros(batch, sh.kv_heads, length, sh.head_dim, dtype=self.dtype, device=self.device))
                for _ in self.layers]

    def hidden(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
               cache: list | None = None, slots: torch.Tensor | None = None):
        """The last layer's output (before the final norm) and each layer's keys and values."""
        h = F.embedding(ids, self.embed)
        cos, sin = self.rope(positions)
        kv_out = []
        for i, lw in enumerate(self.layers):
            h, k, v = self.layer(lw, h, cos, sin, mask, None if cache is None else cache[i], slots)
            kv_out.append((k, v))
        return h, kv_out

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return F.linear(rms_norm(h, self.norm, self.shape.eps), self.head)

    def step(self, tok: torch.Tensor, pos: torch.Tensor, cache: list, slot_ids: torch.Tensor) -> torch.Tensor:
        """One token per sequence at position pos[0] (every sequence's), written into the static cache:
        logits [B, vocab]. slot_ids: arange(cache length) on the device (the mask: slots up to pos)."""
        mask = (slot_ids <= pos)[None, None, None, :].expand(tok.shape[0], 1, 1, slot_ids.shape[0])
        h = F.embedding(tok, self.embed)
        cos, sin = self._cos[pos][None, None], self._sin[pos][None, None]
        for i, lw in enumerate(self.layers):
            h, _, _ = self.layer(lw, h, cos, sin, mask, cache[i], pos)
        return self.logits(h)[:, -1]


def visible(query_slots: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """mask [B, 1, T, S]: key slot j is visible to the query at slot s if j <= s and the key is a real token
    (key_valid [B, S]); a query always sees itself, so no row is empty (padding rows stay finite)."""
    j = torch.arange(key_valid.shape[1], device=key_valid.device)
    s = query_slots[:, None]
    return (((j[None] <= s) & key_valid[:, None, :]) | (j[None] == s))[:, None]
