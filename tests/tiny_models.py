"""Tiny random-weight checkpoints, built inside the tests (no download)."""
from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def make_tiny_model(dest: Path, arch: str, tokenizer_dir: Path, seed: int = 0, hidden: int = 256,
                    layers: int = 2, channel_spread: float = 0.0, dtype: str = "float16", max_positions: int = 2048,
                    rope_scaling: dict | None = None, sharpen: tuple[float, float] | None = None) -> Path:
    """A 2-layer Llama, Qwen2 or Qwen3 with the embedded model's tokenizer.

    channel_spread > 0 multiplies each input channel of every decoder linear by a log-normal
    factor, so weight magnitudes differ per channel as in trained models (random init is flat).
    sharpen = (embedding factor, q/k factor) makes the output peaked and attention sharp, so that
    positions (RoPE) matter as they do in a trained model."""
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)

    common = dict(vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                  bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
    if rope_scaling:
        common["rope_scaling"] = rope_scaling
    if arch == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    elif arch == "qwen2":  # biases on q, k and v
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "qwen3":
        config, cls = Qwen3Config(head_dim=hidden // 4, **common), Qwen3ForCausalLM
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = cls(config)
    if channel_spread:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(5.0)
            for name, mod in model.named_modules():
                if isinstance(mod, torch.nn.Linear) and ".layers." in name:
                    f = torch.exp(channel_spread * torch.randn(mod.in_features, generator=g))
                    mod.weight.mul_(f[None, :])
    if sharpen:
        with torch.no_grad():
            model.model.embed_tokens.weight.mul_(sharpen[0])
            for layer in model.model.layers:
                layer.self_attn.q_proj.weight.mul_(sharpen[1])
                layer.self_attn.k_proj.weight.mul_(sharpen[1])
    model = model.to(getattr(torch, dtype))
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copy2(tokenizer_dir / name, dest / name)
    return dest


def pack_awq_nibbles(values):
    """[rows, cols] values 0..15 -> AWQ's [rows, cols/8] int32 (nibble i holds column AWQ_ORDER[i] of a block)."""
    import torch

    from evaluators.backends.awq_gemm import AWQ_ORDER

    rows, cols = values.shape
    blocks = values.reshape(rows, cols // 8, 8).to(torch.int64)
    word = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for i, col in enumerate(AWQ_ORDER):
        word |= blocks[:, :, col] << (4 * i)
    return torch.where(word >= 2**31, word - 2**32, word).to(torch.int32)


def random_awq(in_f: int, out_f: int, group: int, seed: int = 0, scale: float = 0.004):
    """Random AWQ GEMM tensors (qweight, qzeros, scales) of an in_f -> out_f layer."""
    import torch

    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (in_f, out_f), generator=g)
    z = torch.randint(0, 16, (in_f // group, out_f), generator=g)
    s = (torch.rand(in_f // group, out_f, generator=g) * scale + scale / 2).half()
    return pack_awq_nibbles(q), pack_awq_nibbles(z), s


def make_random_awq(src: Path, dest: Path, group: int = 128) -> Path:
    """An AWQ GEMM checkpoint of `src`'s model with every decoder linear replaced by random AWQ tensors."""
    import json

    from safetensors.torch import load_file, save_file

    state = {}
    for f in sorted(src.glob("*.safetensors")):
        state.update(load_file(f))
    out, seed = {}, 0
    for name, t in state.items():
        if ".layers." in name and name.endswith("proj.weight"):
            prefix = name[: -len(".weight")]
            out_f, in_f = t.shape
            qw, qz, s = random_awq(in_f, out_f, group, seed=seed)
            seed += 1
            out.update({prefix + ".qweight": qw, prefix + ".qzeros": qz, prefix + ".scales": s})
        else:
            out[name] = t
    dest.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dest / "model.safetensors"))
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True,
                                  "version": "gemm"}
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest
