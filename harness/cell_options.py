"""Per-cell options of GPU, kernel-check and performance-only runs (device, batch sizes, roles)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from evaluators.kernel_check import QUANTIZED_FORMATS, REFERENCE_RUNTIME, UNQUANTIZED_VARIANTS


def needs_dequant_reference(variant: str, cfg) -> bool:
    """Whether this variant also gets a dequantized-reference cell (only quantized ones, only when checking)."""
    return cfg.eval.kernel_check_tokens > 0 and variant not in UNQUANTIZED_VARIANTS


def is_dequant_reference(fmt: str, runtime: str, device: str) -> bool:
    """transformers reading a quantized format computes with dequantized weights: on a GPU run that
    cell is the exact reference for the kernel checks, and its speed is not that format's speed."""
    return runtime == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS and device != "cpu"


def add_device_options(spec: dict, fmt: str, prepared, cfg, work: Path) -> None:
    s = cfg.eval
    spec["device"] = s.device
    role = "dequantized-reference" if is_dequant_reference(fmt, spec["runtime"], s.device) else "measured"
    spec["role"] = role
    if role == "dequantized-reference" or (spec["runtime"] == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS):
        # transformers computes a quantized format with its weights dequantized to floats: its speed would
        # be fp16's, not the format's, so none is reported for it (a quality reference only)
        spec["speed"] = False
    if s.device != "cpu" and spec.get("speed", True):
        spec["profile_decode"] = True  # where a decoded token's GPU time goes (evaluators/decode_profile.py)
    extra = [b for b in s.decode_batches if b > 1]
    if extra:
        spec["decode_batches"] = extra
    if cfg.synthetic:  # performance only: no perplexity, no KL divergence
        spec["score"] = False
        spec["reference_dir"] = None
        spec["write_reference"] = False
    if s.kernel_check_tokens:
        spec["kernel_check_ids"] = [int(t) for t in prepared.windows.ids.reshape(-1)[: s.kernel_check_tokens]]
        spec["kernel_check_out"] = str(work / "kernel-check" / f"{spec['variant']}__{spec['runtime']}.npy")


def _gpu_pool(cfg) -> list[int]:
    """The GPUs a run may use (--gpus of the visible ones); a clear error when there are fewer."""
    from harness import gpu_plan
    from harness.errors import UserError

    pool = gpu_plan.visible_gpus()
    if not pool:
        raise UserError("--device cuda asked for, but nvidia-smi lists no GPU here")
    if cfg.eval.gpus and len(pool) < cfg.eval.gpus:
        raise UserError(f"--gpus {cfg.eval.gpus} asked for, but {len(pool)} GPU(s) are visible")
    return pool[: cfg.eval.gpus] if cfg.eval.gpus else pool


def _kv_size(s) -> tuple[int, int]:
    """The longest context and the largest batch a cell's KV cache must hold."""
    return max(s.n_ctx, s.prefill_tokens + s.decode_tokens + 1), max(s.decode_batches)


@dataclass
class GpuContext:
    """The GPU pool of a run and the model's shape, to give each cell its GPUs (harness/gpu_plan.py)."""

    pool: list[int]
    shape: object = None
    n_params: int = 0

    @classmethod
    def of(cls, cfg, source) -> "GpuContext":
        from harness import gpu_plan

        if cfg.eval.device == "cpu" or source is None or not (source.path / "config.json").is_file():
            return cls([])
        shape = gpu_plan.shape_of(json.loads((source.path / "config.json").read_text()))
        return cls(_gpu_pool(cfg), shape, shape.n_params)

    @staticmethod
    def check_fits(cfg, config: dict) -> None:
        """Before anything is built: the float16 reference must fit the GPUs given (a clear error if not)."""
        from harness import gpu_plan

        if cfg.eval.device == "cpu" or "transformers" not in cfg.runtimes:
            return
        gpu_plan.cell_gpus("transformers", gpu_plan.shape_of(config), 2.0, *_kv_size(cfg.eval), _gpu_pool(cfg))

    def cell(self, runtime: str, manifest, cfg) -> dict:
        from harness import gpu_plan

        s = cfg.eval
        # transformers computes every format in float16 (dequantized references); kernels read the file's bits
        bpw = manifest.size_bytes * 8 / self.n_params if self.n_params else None
        bpp = 2.0 if runtime == "transformers" else gpu_plan.bytes_per_param(manifest.format, bpw)
        plan = gpu_plan.cell_gpus(runtime, self.shape, bpp, *_kv_size(s), self.pool, s.llama_split_mode,
                                  manifest.format)
        return plan.as_dict()
