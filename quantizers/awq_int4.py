"""awq-int4: AWQ INT4 through one adapter with two tool backends, each in its own environment.

- autoawq (default; the seed's tool): AutoAWQ 0.2.9 GEMM checkpoint, the format vLLM/TGI read.
- llmcompressor: llm-compressor's AWQModifier, compressed-tensors (pack-quantized) checkpoint.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from core.errors import ToolMissing
from quantizers.awq_groups import choose_group_size
from core.registry import register_quantizer
from quantizers.base import BuildContext, Manifest, Quantizer, QuantizerError, file_sha256, folder_size, run_tool

HERE = Path(__file__).resolve().parent
WORKERS = {"autoawq": HERE / "awq_autoawq_worker.py", "llmcompressor": HERE / "awq_llmcompressor_worker.py"}
WORKER_HELPERS = (HERE / "awq_fast_clip.py", HERE / "hf_config_compat.py", HERE / "awq_groups.py")
FORMATS = {"autoawq": "hf-awq-gemm", "llmcompressor": "hf-compressed-tensors"}
VERSION_PACKAGES = {
    "autoawq": ("autoawq", "transformers", "torch"),
    "llmcompressor": ("llmcompressor", "compressed-tensors", "transformers", "torch"),
}
_versions_cache: dict[str, dict[str, str]] = {}


def backend_python(backend: str) -> Path:
    from core.tool_envs import env_python

    return env_python(backend)


def backend_versions(backend: str) -> dict[str, str]:
    if backend not in _versions_cache:
        code = (
            "import json, importlib.metadata as m; "
            f"print(json.dumps({{p: m.version(p) for p in {list(VERSION_PACKAGES[backend])!r}}}))"
        )
        out = subprocess.run([str(backend_python(backend)), "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            raise ToolMissing(f"the {backend} environment is broken; run `make setup` ({out.stderr.strip()[-200:]})")
        _versions_cache[backend] = json.loads(out.stdout)
    return _versions_cache[backend]


@register_quantizer(variants=("awq-int4",), default=("awq-int4",), env="autoawq", order=3,
                    make=lambda variant, recipe: AwqQuantizer(recipe),
                    summary="AWQ INT4 (w4, group 128, zero point, GEMM) by AutoAWQ or llm-compressor")
class AwqQuantizer(Quantizer):
    variant = "awq-int4"
    needs = ("fp16",)  # calibrates and packs the fp16 artifact
    device_dependent = True  # AutoAWQ's scale and clip search is not bit-identical across CPUs

    def __init__(self, recipe) -> None:  # recipe: core.settings.AwqRecipe
        self._recipe = recipe

    @property
    def backend(self) -> str:
        return self._recipe.backend

    def recipe(self, ctx: BuildContext) -> dict:
        d = self._recipe.as_dict()
        d["calibration_sha256"] = file_sha256(ctx.calibration)
        # the worker and the helpers it imports: a fix in any of them rebuilds the artifact
        import hashlib

        h = hashlib.sha256()
        for f in [WORKERS[self.backend], *WORKER_HELPERS]:
            h.update(file_sha256(f).encode())
        d["worker_sha256"] = h.hexdigest()[:16]
        return d

    def tool_versions(self) -> dict[str, str]:
        return backend_versions(self.backend)

    @staticmethod
    def _progress_printer(ctx: BuildContext):
        """Turn the tool's tqdm bars (AutoAWQ: 'AWQ: 40%| | 12/30 [06:00<...') into one progress line."""
        bar = re.compile(r"^([A-Za-z ()_-]+):\s*\d+%\|.*?\|\s*(\d+)/(\d+) \[([0-9:]+)")

        def on_line(line: str) -> None:
            m = bar.match(line)
            if m and ctx.progress:
                ctx.progress(f"  [awq-int4] {m.group(1).strip()}: {m.group(2)}/{m.group(3)} layers, {m.group(4)} elapsed")

        return on_line

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        fp16_dir, fp16_manifest = ctx.upstream["fp16"]
        src = fp16_dir / fp16_manifest.artifact
        out = dest / "model"
        config = json.loads((src / "config.json").read_text())
        try:
            group, group_note = choose_group_size(config, self._recipe.q_group_size)
        except ValueError as e:
            raise QuantizerError(str(e)) from None
        ctx.log(f"[awq-int4] {self.backend}: w_bit {self._recipe.w_bit}, group {group}, "
                f"{self._recipe.calib_samples} calibration samples x {self._recipe.calib_seq_len} tokens")
        t0 = time.time()
        output = run_tool(
            [str(backend_python(self.backend)), str(WORKERS[self.backend]), "--source", str(src), "--out", str(out),
             "--recipe", json.dumps(self._recipe.as_dict()), "--calib", str(ctx.calibration),
             "--threads", str(ctx.threads), "--device", self._recipe.device],
            f"AWQ ({self.backend})",
            on_line=self._progress_printer(ctx),
        )
        result = next((json.loads(l[7:]) for l in output.splitlines() if l.startswith("RESULT ")), {})
        notes = [f"AWQ backend: {self.backend}"]
        if group_note:
            notes.append(group_note)
        if result.get("config_for_transformers_4"):
            notes.append("config spelled for transformers 4.51 before calibration (" + ", ".join(result["config_for_transformers_4"])
                         + "): it would otherwise calibrate with its default RoPE base")
        if result.get("fast_clip"):
            notes.append("AutoAWQ's clip search computed as batched matrix products (same grid and choice; "
                         "quantizers/awq_fast_clip.py): 68% of the CPU calibration time before")
        if result.get("cpu_snapshot_fix"):
            notes.append("AutoAWQ's CPU weight-snapshot aliasing bug in the scale search was patched (see quantizers/awq_autoawq_worker.py)")
        recipe = self.recipe(ctx)
        recipe["effective_group_size"] = group
        return Manifest(
            variant=self.variant, format=FORMATS[self.backend], artifact="model", tool=self.backend,
            tool_versions=self.tool_versions(), recipe=recipe, source_sha256=ctx.source.sha256, cache_key="",
            wall_time_s=round(time.time() - t0, 2), size_bytes=folder_size(out),
            calibration_sha256=recipe["calibration_sha256"], notes=notes,
        )
