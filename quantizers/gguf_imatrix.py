"""The importance matrix that imatrix-calibrated GGUF variants read, computed by llama.cpp's own
llama-imatrix from the F16 GGUF on the same calibration text (and token budget) that AWQ uses."""
from __future__ import annotations

import json
import time
from pathlib import Path

from core.registry import register_quantizer
from quantizers.base import BuildContext, Manifest, Quantizer, file_sha256, run_tool
from quantizers.gguf import llama_cpp_python_version
from quantizers.llama_tools import IMATRIX_VARIANT, llama_tool


def calibration_text(calib_file: Path) -> str:
    """The calibration texts (.jsonl 'text' fields or plain lines), one paragraph each."""
    texts = []
    for line in calib_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            texts.append(json.loads(line)["text"].strip() if line.startswith("{") else line)
    return "\n\n".join(texts) + "\n"


@register_quantizer(variants=(IMATRIX_VARIANT,), hidden=True, order=90,
                    make=lambda variant, recipe: ImatrixBuilder(chunks=recipe.calib_samples, n_ctx=recipe.calib_seq_len))
class ImatrixBuilder(Quantizer):
    """llama-imatrix over `chunks` chunks of `n_ctx` tokens (AWQ's 64 × 256 by default)."""

    variant = IMATRIX_VARIANT
    device_dependent = True  # llama-imatrix sums activations with the host's SIMD kernels
    needs = ("gguf-f16",)

    def __init__(self, chunks: int = 64, n_ctx: int = 256) -> None:
        self.chunks, self.n_ctx = chunks, n_ctx

    def recipe(self, ctx: BuildContext) -> dict:
        return {"tool": "llama-imatrix", "chunks": self.chunks, "n_ctx": self.n_ctx,
                "calibration_sha256": file_sha256(ctx.calibration), "process_output": False}

    def tool_versions(self) -> dict[str, str]:
        return {"llama-imatrix": "vendored llama.cpp of llama-cpp-python " + llama_cpp_python_version()}

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        f16_dir, f16 = ctx.upstream["gguf-f16"]
        text = dest / "calibration.txt"
        text.write_text(calibration_text(ctx.calibration), encoding="utf-8")
        out = dest / "imatrix.gguf"
        t0 = time.time()
        ctx.log(f"[{self.variant}] llama-imatrix: {self.chunks} chunks × {self.n_ctx} tokens of {ctx.calibration.name}")

        def on_line(line: str) -> None:
            if ctx.progress and line.startswith("["):  # llama-imatrix prints "[1]12.3,[2]..." per chunk
                ctx.progress(f"  [{self.variant}] chunk {line.count('[')}/{self.chunks}")

        run_tool([str(llama_tool("llama-imatrix", ctx.log)), "-m", str(f16_dir / f16.artifact), "-f", str(text),
                  "-o", str(out), "-c", str(self.n_ctx), "-b", str(self.n_ctx), "--chunks", str(self.chunks),
                  "-t", str(ctx.threads), "--no-ppl"], "llama-imatrix", on_line=on_line)
        text.unlink()
        if not out.is_file():
            raise RuntimeError("llama-imatrix finished without writing its file")
        recipe = {**self.recipe(ctx), "sha256": file_sha256(out)}
        return Manifest(
            variant=self.variant, format="imatrix", artifact=out.name, tool="llama.cpp llama-imatrix",
            tool_versions=self.tool_versions(), recipe=recipe, source_sha256=ctx.source.sha256, cache_key="",
            wall_time_s=round(time.time() - t0, 2), size_bytes=out.stat().st_size,
            calibration_sha256=recipe["calibration_sha256"],
        )
