"""transformers runtime (PyTorch, CPU): HF safetensors, AWQ GEMM (dequantized: a quality
reference, not a speed figure) and compressed-tensors checkpoints. Computes in float32."""
from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from evaluators.backends.base import Generation, Runtime


def _load_awq_dequantized(path: Path, torch):
    """Build the model from its config and fill every AWQ linear with its exactly dequantized weight."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from evaluators.backends.awq_gemm import dequantize_gemm

    cfg_dict = json.loads((path / "config.json").read_text())
    qcfg = cfg_dict.pop("quantization_config")
    if qcfg.get("bits", qcfg.get("w_bit", 4)) != 4 or str(qcfg.get("version", "gemm")).lower() != "gemm":
        raise ValueError(f"only 4-bit AWQ GEMM checkpoints are supported, got {qcfg}")
    group = int(qcfg.get("group_size", qcfg.get("q_group_size")))
    config = AutoConfig.for_model(**cfg_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state: dict = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(f))
    dense = {}
    for name, t in state.items():
        if name.endswith(".qweight"):
            prefix = name[: -len(".qweight")]
            dense[prefix + ".weight"] = dequantize_gemm(t, state[prefix + ".qzeros"], state[prefix + ".scales"], group)
        elif not name.endswith((".qzeros", ".scales")):
            dense[name] = t.to(torch.float32) if t.is_floating_point() else t
    missing, unexpected = model.load_state_dict(dense, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"AWQ checkpoint does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model


class TransformersRuntime(Runtime):
    name = "transformers"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.model = None

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        if fmt == "hf-awq-gemm":
            self.model = _load_awq_dequantized(artifact, torch)
            self.notes.append("AWQ weights dequantized exactly and run in float32: a quality reference, not a speed figure")
        else:
            self.model = AutoModelForCausalLM.from_pretrained(artifact, dtype=torch.float32)
            if fmt == "hf-compressed-tensors":
                self.notes.append("compressed-tensors checkpoint run through transformers on CPU: a quality reference, not a speed figure")
        self.model.eval()

    def logits(self, ids: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None]
            return self.model(input_ids=x, use_cache=False).logits[0].float().numpy()

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        torch = self.torch
        out_tokens: list[int] = []
        with torch.inference_mode():
            x = torch.tensor([prompt], dtype=torch.long)
            t0 = time.perf_counter()
            out = self.model(input_ids=x, use_cache=True)
            nxt = int(out.logits[0, -1].argmax())
            t1 = time.perf_counter()
            pkv = out.past_key_values
            out_tokens.append(nxt)
            for _ in range(n_new):
                out = self.model(input_ids=torch.tensor([[nxt]]), past_key_values=pkv, use_cache=True)
                pkv = out.past_key_values
                nxt = int(out.logits[0, -1].argmax())
                out_tokens.append(nxt)
            t2 = time.perf_counter()
        return Generation(out_tokens, t1 - t0, t2 - t1, n_new)

    def weight_bytes(self) -> int | None:
        seen, total = set(), 0
        for p in self.model.parameters():  # tied weights counted once
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
        return total

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("torch", "transformers")}

    def compute_dtype(self) -> str:
        return "float32"
