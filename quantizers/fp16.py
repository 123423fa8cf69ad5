"""fp16: the source itself, as float16 safetensors (a bf16/fp32 source is cast; the manifest says so)."""
from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path

from core.registry import register_quantizer
from quantizers.base import BuildContext, Manifest, Quantizer, folder_size, link_or_copy

SIDE_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "generation_config.json", "chat_template.jinja", "vocab.json", "merges.txt",
)


@register_quantizer(variants=("fp16",), default=("fp16",), same_weights=("fp16",), order=0,
                    summary="the source's weights as float16 safetensors (the reference)")
class Fp16Quantizer(Quantizer):
    variant = "fp16"

    def recipe(self, ctx: BuildContext) -> dict:
        return {"dtype": "float16"}

    def tool_versions(self) -> dict[str, str]:
        return {"safetensors": metadata.version("safetensors")}

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        t0 = time.time()
        src: Path = ctx.source.path
        out = dest / "model"
        out.mkdir(parents=True)
        notes = []
        weight_files = sorted(src.glob("*.safetensors"))
        if ctx.source.dtype == "F16":
            for f in weight_files:
                link_or_copy(f, out / f.name)
        else:
            notes.append(f"source weights are {ctx.source.dtype}; cast to float16")
            self._cast(weight_files, out)
        cfg = json.loads((src / "config.json").read_text())
        cfg["torch_dtype"] = cfg["dtype"] = "float16"
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
        for name in SIDE_FILES:
            if (src / name).exists():
                link_or_copy(src / name, out / name)
        if (src / "model.safetensors.index.json").exists():
            link_or_copy(src / "model.safetensors.index.json", out / "model.safetensors.index.json")
        return Manifest(
            variant=self.variant, format="hf-safetensors", artifact="model", tool="safetensors (copy/cast)",
            tool_versions=self.tool_versions(), recipe=self.recipe(ctx), source_sha256=ctx.source.sha256,
            cache_key="", wall_time_s=round(time.time() - t0, 2), size_bytes=folder_size(out), notes=notes,
        )

    @staticmethod
    def _cast(files: list[Path], out: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        for f in files:
            tensors = {k: (v.to(torch.float16) if v.is_floating_point() else v) for k, v in load_file(f).items()}
            save_file(tensors, out / f.name, metadata={"format": "pt"})
