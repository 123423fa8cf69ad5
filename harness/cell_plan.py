"""Every cell's spec is made here: which (variant, runtime) pairs a run evaluates, and what each measures
(core.cellspec.CellSpec), including GPU placement, kernel-check and performance-only settings."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core import registry
from core.cellspec import CellSpec
from core.names import QUANTIZED_FORMATS, REFERENCE, REFERENCE_RUNTIME


def needs_dequant_reference(variant: str, cfg) -> bool:
    """Whether this variant also gets a dequantized-reference cell (only quantized ones, only when checking)."""
    return cfg.eval.kernel_check_tokens > 0 and variant not in registry.same_weights_variants()


def is_dequant_reference(fmt: str, runtime: str, device: str) -> bool:
    """transformers reading a quantized format computes with dequantized weights: on a GPU run that
    cell is the exact reference for the kernel checks, and its speed is not that format's speed."""
    return runtime == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS and device != "cpu"


def runtimes_for(fmt: str, enabled: tuple[str, ...], dequant: bool = False) -> list[str]:
    """The enabled runtimes that read `fmt` (with dequant, also those that read it only as a dequantized reference)."""
    return [r for r, info in registry.runtimes().items() if r in enabled and info.reads(fmt, dequant)]


def _gpu_pool(cfg) -> list[int]:
    """The GPUs a run may use (--gpus of the visible ones, or of a Ray cluster's largest GPU node); a clear error
    when there are fewer."""
    from core.errors import UserError
    from harness import gpu_plan

    if getattr(cfg, "executor", "local") == "ray":  # planned from the cluster: the driver needs no GPU
        from harness.ray_executor import connect
        from harness.ray_resources import gpu_pool, offers

        pool = gpu_pool(offers(connect(cfg, _PrintConsole())))
        if not pool:
            raise UserError("--device cuda asked for, but no node of the Ray cluster offers a GPU")
    else:
        pool = gpu_plan.visible_gpus()
    if not pool:
        raise UserError("--device cuda asked for, but nvidia-smi lists no GPU here")
    if cfg.eval.gpus and len(pool) < cfg.eval.gpus:
        raise UserError(f"--gpus {cfg.eval.gpus} asked for, but {len(pool)} GPU(s) are visible")
    return pool[: cfg.eval.gpus] if cfg.eval.gpus else pool


class _PrintConsole:
    """The terminal, for a cluster joined while planning (before the run's console has a log)."""

    @staticmethod
    def line(msg: str) -> None:
        print(msg, flush=True)

    alarm = progress = line


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

        if cfg.eval.device == "cpu" or REFERENCE_RUNTIME not in cfg.runtimes:
            return
        gpu_plan.cell_gpus(registry.runtime(REFERENCE_RUNTIME), gpu_plan.shape_of(config), 2.0, *_kv_size(cfg.eval),
                           _gpu_pool(cfg), cfg.options(REFERENCE_RUNTIME))

    def cell(self, runtime: str, manifest, cfg) -> dict:
        from harness import gpu_plan

        info = registry.runtime(runtime)
        # a runtime that computes every format in float16 (dequantized references) holds 2 bytes per weight;
        # kernels read the file's bits
        bpw = manifest.size_bytes * 8 / self.n_params if self.n_params else None
        bpp = 2.0 if info.cls.computes_dequantized else gpu_plan.bytes_per_param(manifest.format, bpw)
        return gpu_plan.cell_gpus(info, self.shape, bpp, *_kv_size(cfg.eval), self.pool, cfg.options(runtime),
                                  manifest.format).as_dict()


class CellPlanner:
    """Makes the CellSpec of each cell of a run (and of `quantcompare bench`)."""

    def __init__(self, cfg, prepared, work: Path, source=None, reference_dir: Path | None = None,
                 gpus: GpuContext | None = None, gen_prompts: list | None = None) -> None:
        self.cfg, self.prepared, self.work, self.source = cfg, prepared, work, source
        self.reference_dir, self.gpus = reference_dir, gpus or GpuContext([])
        self.gen_prompts = [list(p.ids) for p in gen_prompts] if gen_prompts else None

    def quality(self, variant: str, outcome, runtime: str, has_reference: bool = True) -> CellSpec:
        """The cell that scores the windows, generates and times `variant` (built as `outcome`) on `runtime`."""
        cfg, s, p = self.cfg, self.cfg.eval, self.prepared
        info = registry.runtime(runtime)
        fmt = outcome.manifest.format
        opts = cfg.options(runtime)
        dequant_ref = is_dequant_reference(fmt, runtime, s.device)
        measured_speed = not (dequant_ref or (runtime == REFERENCE_RUNTIME and fmt in QUANTIZED_FORMATS))
        is_ref = (variant, runtime) == REFERENCE
        spec = CellSpec(
            variant=variant, runtime=runtime, format=fmt, runtime_module=info.module, preload=info.preload,
            artifact=str(outcome.folder / outcome.manifest.artifact),
            options={} if opts is None else _plain(opts),
            windows=str(p.path), windows_sha256=p.info["windows_sha256"], n_ctx=s.n_ctx, threads=s.threads, seed=s.seed,
            tokenizer_probe=p.probe, sanity_prompt_ids=p.sanity_prompt_ids, sanity_new_tokens=8,
            # vLLM reads a GGUF with the source's tokenizer; transformers' GGUF loader guesses the architecture's
            # shape (head_dim, ...), which the source's config states (only the architecture is read from it)
            tokenizer_dir=str(self.source.path) if self.source is not None and info.env == "vllm" else None,
            hf_config_dir=str(self.source.path) if self.source is not None and runtime == REFERENCE_RUNTIME
            and fmt == "gguf" else None,
            score=True, kld_top_k=s.kld_top_k,
            reference_dir=str(self.reference_dir) if self.reference_dir and (is_ref or has_reference) else None,
            write_reference=is_ref,
            # transformers computes a quantized format with its weights dequantized to floats: its speed would be
            # fp16's, not the format's, so none is reported for it (a quality reference only)
            speed=measured_speed, prefill_tokens=s.prefill_tokens, decode_tokens=s.decode_tokens,
            speed_repeats=s.speed_repeats, decode_batches=[b for b in s.decode_batches if b > 1] or None,
            profile_decode=s.device != "cpu" and measured_speed,
            device=s.device, role="dequantized-reference" if dequant_ref else "measured",
            gen_prompts=self.gen_prompts, gen_tokens=s.gen_tokens,
        )
        if s.kernel_check_tokens:
            spec = spec.with_(kernel_check_ids=[int(t) for t in p.windows.ids.reshape(-1)[: s.kernel_check_tokens]],
                              kernel_check_out=str(self.work / "kernel-check" / f"{variant}__{runtime}.npy"))
        if self.gpus.pool:
            spec = spec.with_(parallel=self.gpus.cell(runtime, outcome.manifest, cfg))
        return spec

    @staticmethod
    def tasks(spec: CellSpec, task_req) -> CellSpec:
        """The lm-eval task cell of a quality cell: the same model settings, device and GPU split; nothing of
        the windows, generation or speed."""
        return CellSpec(
            variant=spec.variant, runtime=spec.runtime, format=spec.format, kind="tasks",
            runtime_module=spec.runtime_module, preload=spec.preload, artifact=spec.artifact, options=spec.options,
            n_ctx=spec.n_ctx, threads=spec.threads, seed=spec.seed, tokenizer_dir=spec.tokenizer_dir,
            hf_config_dir=spec.hf_config_dir, score=False, speed=False, device=spec.device, parallel=spec.parallel,
            task_requests=str(task_req.path), task_requests_sha256=task_req.sha256,
        )


    @staticmethod
    def long(spec: CellSpec, probes, reference_dir: Path | None) -> CellSpec:
        """The long-context cell of a quality cell (harness/long_probes.py): the same model settings, its context
        set to the longest window (llama.cpp's n_ctx, vLLM's max_model_len); no generation, no speed."""
        return CellSpec(
            variant=spec.variant, runtime=spec.runtime, format=spec.format, kind="long",
            runtime_module=spec.runtime_module, preload=spec.preload, artifact=spec.artifact, options=spec.options,
            windows=str(probes.path), windows_sha256=probes.sha256, n_ctx=probes.n_ctx, threads=spec.threads,
            seed=spec.seed, tokenizer_dir=spec.tokenizer_dir, hf_config_dir=spec.hf_config_dir, score=True,
            kld_top_k=spec.kld_top_k, reference_dir=str(reference_dir) if reference_dir and spec.reference_dir else None,
            write_reference=spec.write_reference, speed=False, device=spec.device, parallel=spec.parallel,
        )


    @staticmethod
    def instruct(spec: CellSpec, prompts: list, n_new: int) -> CellSpec:
        """The instruction-following cell of a quality cell (harness/instructions.py): the same model settings,
        greedy continuations of the prompts' token ids; the context holds the longest prompt and its answer."""
        ids = [[int(t) for t in p.ids] for p in prompts]
        return CellSpec(
            variant=spec.variant, runtime=spec.runtime, format=spec.format, kind="instruct",
            runtime_module=spec.runtime_module, preload=spec.preload, artifact=spec.artifact, options=spec.options,
            n_ctx=max(spec.n_ctx, max(len(p) for p in ids) + n_new), threads=spec.threads, seed=spec.seed,
            tokenizer_dir=spec.tokenizer_dir, hf_config_dir=spec.hf_config_dir, score=False, speed=False,
            device=spec.device, parallel=spec.parallel, gen_prompts=ids, gen_tokens=n_new,
        )


def _plain(options) -> dict:
    from core.options import as_plain

    return as_plain(options)
