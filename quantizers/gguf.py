"""GGUF variants made by llama.cpp's own tools: convert_hf_to_gguf.py (F16) and its quantizer (any type, with or
without an importance matrix)."""
from __future__ import annotations

import sys
import time
from importlib import metadata
from pathlib import Path

from core.errors import ToolMissing
from core.paths import LLAMA_CPP_SRC
from core.registry import register_quantizer
from quantizers.base import BuildContext, Manifest, Quantizer, file_sha256, folder_size, run_tool
from quantizers.llama_tools import IMATRIX_VARIANT, llama_tool

_converter_sha: str | None = None

# llama.cpp quantization types offered as `gguf-<type>` (and `gguf-<type>-imatrix`), largest first;
# the i-quants exist only with an importance matrix. Names as llama-quantize spells them, lower-cased.
GGUF_TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0",
              "iq4_xs", "iq4_nl", "q3_k_l", "q3_k_m", "q3_k_s", "iq3_m", "iq3_xxs", "q2_k", "q2_k_s", "iq2_m",
              "iq2_xs", "iq2_xxs")
IMATRIX_ONLY = tuple(t for t in GGUF_TYPES if t.startswith("iq") or t == "q2_k_s")
GGUF_VARIANTS = tuple(f"gguf-{t}{suffix}" for t in GGUF_TYPES for suffix in ("", "-imatrix")
                      if not (t in IMATRIX_ONLY and not suffix))


def parse_gguf_variant(name: str) -> tuple[str, bool] | None:
    """`gguf-q4_k_m` -> ("q4_k_m", False); `gguf-q2_k-imatrix` -> ("q2_k", True); None if not a GGUF quant."""
    if name not in GGUF_VARIANTS:
        return None
    body = name[5:]
    imatrix = body.endswith("-imatrix")
    return (body[: -len("-imatrix")] if imatrix else body), imatrix


def converter_path() -> Path:
    path = LLAMA_CPP_SRC / "convert_hf_to_gguf.py"
    if not path.is_file():
        raise ToolMissing(f"llama.cpp's converter is missing ({path}); run `make setup`")
    return path


def llama_cpp_python_version() -> str:
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        raise ToolMissing("llama-cpp-python is not installed; run `make setup`") from None


@register_quantizer(variants=("gguf-f16",), default=("gguf-f16",), same_weights=("gguf-f16",), order=1,
                    summary="the same weights in GGUF F16, by llama.cpp's converter (the format's own effect)")
class GgufF16Quantizer(Quantizer):
    """Format-only reference: the same weights as fp16, written by llama.cpp's converter."""

    variant = "gguf-f16"
    needs = ("fp16",)

    def recipe(self, ctx: BuildContext) -> dict:
        return {"outtype": "f16"}

    def tool_versions(self) -> dict[str, str]:
        global _converter_sha
        if _converter_sha is None:
            _converter_sha = file_sha256(converter_path())[:16]
        return {"llama_cpp_python": llama_cpp_python_version(), "convert_hf_to_gguf.py": _converter_sha}

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        fp16_dir, fp16_manifest = ctx.upstream["fp16"]
        src = fp16_dir / fp16_manifest.artifact
        out = dest / "model-f16.gguf"
        t0 = time.time()
        ctx.log(f"[gguf-f16] convert_hf_to_gguf.py --outtype f16 ({src.name})")
        run_tool(
            [sys.executable, str(converter_path()), str(src), "--outtype", "f16", "--outfile", str(out)],
            "convert_hf_to_gguf.py",
            env={"PYTHONPATH": str(LLAMA_CPP_SRC / "gguf-py")},
        )
        return Manifest(
            variant=self.variant, format="gguf", artifact=out.name, tool="llama.cpp convert_hf_to_gguf.py",
            tool_versions=self.tool_versions(), recipe=self.recipe(ctx), source_sha256=ctx.source.sha256,
            cache_key="", wall_time_s=round(time.time() - t0, 2), size_bytes=folder_size(out),
        )


@register_quantizer(variants=GGUF_VARIANTS, default=("gguf-q4_k_m",), order=2,
                    make=lambda variant, recipe: GgufTypeQuantizer(*parse_gguf_variant(variant)),
                    summary="llama-quantize to gguf-<type> (-imatrix: with llama-imatrix on the calibration text)")
class GgufTypeQuantizer(Quantizer):
    """Any llama.cpp quantization type from the F16 GGUF: llama_model_quantize (what llama-quantize
    calls) without an importance matrix; with one, llama-quantize --imatrix from the same source."""

    def __init__(self, ftype: str, imatrix: bool = False) -> None:
        self.ftype = ftype.lower()
        self.imatrix = imatrix
        self.variant = f"gguf-{self.ftype}" + ("-imatrix" if imatrix else "")
        self.needs = ("gguf-f16", IMATRIX_VARIANT) if imatrix else ("gguf-f16",)

    def recipe(self, ctx: BuildContext) -> dict:
        if not self.imatrix:
            return {"ftype": self.ftype.upper(), "imatrix": None}
        _, im = ctx.upstream.get(IMATRIX_VARIANT, (None, None))
        return {"ftype": self.ftype.upper(), "imatrix": im.recipe if im else "pending",
                "imatrix_sha256": im.recipe.get("sha256") if im else None}

    def tool_versions(self) -> dict[str, str]:
        versions = {"llama_cpp_python": llama_cpp_python_version()}
        if self.imatrix:
            versions["llama-quantize"] = "vendored llama.cpp of llama-cpp-python " + versions["llama_cpp_python"]
        return versions

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        f16_dir, f16_manifest = ctx.upstream["gguf-f16"]
        src = f16_dir / f16_manifest.artifact
        out = dest / f"model-{self.ftype}{'-imatrix' if self.imatrix else ''}.gguf"
        t0 = time.time()
        if self.imatrix:
            im_dir, im = ctx.upstream[IMATRIX_VARIANT]
            ctx.log(f"[{self.variant}] llama-quantize --imatrix {im.artifact} {self.ftype.upper()}")
            log = run_tool([str(llama_tool("llama-quantize", ctx.log)), "--imatrix", str(im_dir / im.artifact), str(src),
                            str(out), self.ftype.upper(), str(ctx.threads)], "llama-quantize")
        else:
            ctx.log(f"[{self.variant}] llama_model_quantize {self.ftype.upper()}")
            log = run_tool(
                [sys.executable, "-m", "quantizers.gguf_quantize_worker", str(src), str(out), self.ftype.upper(),
                 str(ctx.threads)],
                "llama_model_quantize", cwd=Path(__file__).resolve().parent.parent,
            )
        notes = [l.strip() for l in log.splitlines() if "fallback" in l.lower()][:5]
        return Manifest(
            variant=self.variant, format="gguf", artifact=out.name,
            tool="llama.cpp llama-quantize --imatrix" if self.imatrix else "llama.cpp llama_model_quantize",
            tool_versions=self.tool_versions(), recipe=self.recipe(ctx), source_sha256=ctx.source.sha256,
            cache_key="", wall_time_s=round(time.time() - t0, 2), size_bytes=folder_size(out), notes=notes,
            calibration_sha256=ctx.upstream[IMATRIX_VARIANT][1].calibration_sha256 if self.imatrix else None,
        )
