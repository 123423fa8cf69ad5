"""The cells of a run: planned from the built variants (the fp16 reference first), then evaluated one by one,
each in its own subprocess or from the store. The comparison and the sensitivity sweep both run cells this way."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from core import interrupts
from harness import store
from harness.cell_plan import CellPlanner, GpuContext, needs_dequant_reference, runtimes_for
from harness.cell_launcher import CellJob, CellOutcome, cell_key, evaluator_code_hash, load_cached, run_group
from harness.config import RunConfig
from core.errors import UserError
from harness.host import environment_fingerprint, measured_here, this_host
from harness.metrics import REFERENCE

CELL_TIMEOUT_S = 3600.0


def reference_dir(outcomes, prepared, cfg: RunConfig, code: str) -> Path:
    """Where the fp16 reference cell keeps its per-window top-k: in the shared store, keyed by what
    determines its content (the fp16 artifact, the windows, k, device and the evaluator code)."""
    ref = outcomes.get(REFERENCE[0])
    parts = [ref.manifest.cache_key if ref and ref.manifest else "none", prepared.info["windows_sha256"],
             cfg.eval.kld_top_k, cfg.eval.device, code, this_host().device_class(cfg.eval.device),
             environment_fingerprint()["sha256"]]
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]
    return store.area("references") / f"{key}-k{cfg.eval.kld_top_k}"


def long_reference_dir(ref_dir: Path, probes) -> Path:
    """Where the fp16 reference's long cell keeps its top-k: beside the windows' reference, keyed by the probes."""
    return ref_dir.parent / f"{ref_dir.name}-long-{probes.sha256[:12]}"


def check_reference_disk(ref_dir: Path, prepared, source, cfg: RunConfig) -> None:
    """An exact KLD keeps fp16's whole distribution: refuse, before anything is scored, when it cannot fit."""
    if cfg.eval.kld_top_k > 0 or (ref_dir / "COMPLETE").is_file() or cfg.synthetic:
        return
    try:
        vocab = int(json.loads((source.path / "config.json").read_text())["vocab_size"])
    except (OSError, ValueError, KeyError):
        return
    positions = int(prepared.info["scored_tokens"])
    need = positions * vocab * 4
    ref_dir.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(ref_dir.parent).free
    if need + (1 << 30) > free:
        raise UserError(f"--kld-exact keeps fp16's whole distribution: {positions:,} positions × {vocab:,} tokens × 4 "
                        f"bytes = {need / 1e9:.2f} GB (about {1000 * vocab * 4 / 1e6:.0f} MB per 1,000 tokens), and "
                        f"{ref_dir.parent} has {free / 1e9:.2f} GB free (1 GB is kept spare); free space "
                        "(quantcompare cache prune), use fewer --windows, or drop --kld-exact")


def without_reference_key(key: str) -> str:
    """The key of a cell that ran without its fp16 reference (which failed): never the full key."""
    return hashlib.sha256(f"{key}|no-fp16-reference".encode()).hexdigest()


def plan_cells(outcomes, prepared, cfg: RunConfig, work: Path, source=None, task_req=None,
               gen_prompts: list | None = None, long_probes=None, instruct_prompts: list | None = None) -> list[CellJob]:
    """Every (variant, runtime) pair whose runtime reads the variant's format (reference first),
    then one lm-eval task cell per pair when tasks are asked for, one long-context cell per measured pair
    when long probes are given (harness/long_probes.PreparedProbes), and one instruction-following cell per
    measured pair when instruction prompts are given (harness/instruct_prompts.py)."""
    code = evaluator_code_hash()
    ref_dir = reference_dir(outcomes, prepared, cfg, code)
    planner = CellPlanner(cfg, prepared, work, source, ref_dir, GpuContext.of(cfg, source), gen_prompts)
    jobs = []
    for v, o in outcomes.items():
        if o.manifest is None:
            continue
        for r in runtimes_for(o.manifest.format, cfg.runtimes, dequant=needs_dequant_reference(v, cfg)):
            spec = planner.quality(v, o, r, has_reference=REFERENCE[0] in outcomes)
            jobs.append(CellJob(v, r, spec, cell_key(spec, o.manifest.cache_key, code), o.manifest.cache_key))
            if task_req is not None:
                tspec = planner.tasks(spec, task_req)
                jobs.append(CellJob(v, r, tspec, cell_key(tspec, o.manifest.cache_key, code), o.manifest.cache_key))
            if long_probes is not None and spec.role == "measured" and spec.score:
                lspec = planner.long(spec, long_probes, long_reference_dir(ref_dir, long_probes))
                jobs.append(CellJob(v, r, lspec, cell_key(lspec, o.manifest.cache_key, code), o.manifest.cache_key))
            if instruct_prompts and spec.role == "measured" and spec.score:
                ispec = planner.instruct(spec, instruct_prompts, cfg.eval.instruct_tokens)
                jobs.append(CellJob(v, r, ispec, cell_key(ispec, o.manifest.cache_key, code), o.manifest.cache_key))
    _estimate_memory(jobs, outcomes, source)
    # the fp16 reference first; dequantized references (only read by the kernel checks) last
    jobs.sort(key=lambda j: (j.kind != "quality", (j.variant, j.runtime) != REFERENCE,
                             j.spec.role == "dequantized-reference"))
    return jobs


def _estimate_memory(jobs: list[CellJob], outcomes, source) -> None:
    """Each job's host memory (harness/ray_resources.host_bytes), from the source's size and vocabulary and the
    artifact's size on disk: what a cluster task asks for."""
    from harness.ray_resources import host_bytes

    try:
        config = json.loads((source.path / "config.json").read_text()) if source is not None else {}
    except (OSError, ValueError):
        config = {}
    n_params, vocab = int(getattr(source, "n_params", 0) or 0), int(config.get("vocab_size") or 0)
    for j in jobs:
        o = outcomes.get(j.variant)
        size = o.manifest.size_bytes if o is not None and o.manifest is not None else 0
        j.host_bytes = host_bytes(n_params, vocab, j.spec.format, j.runtime, j.spec.device, j.spec.n_ctx, size)


def evaluate(jobs: list[CellJob], cells_dir: Path, cfg: RunConfig, console) -> list[CellOutcome]:
    """Every job's outcome, in the jobs' order: here a pair's measures in one subprocess each (one model load), or
    as Ray tasks (--executor ray)."""
    if getattr(cfg, "executor", "local") == "ray":
        from harness.ray_executor import evaluate_on_ray

        return evaluate_on_ray(jobs, cells_dir, cfg, console, run_job)
    outcomes: dict[int, CellOutcome] = {}
    failed_refs: set[str] = set()  # references (window or long) whose writing cell failed
    for group in pair_groups(jobs):
        interrupts.check()
        todo = []
        for i in group:
            if jobs[i].spec.reference_dir in failed_refs:
                without_reference(jobs[i])
            cached = stored(jobs[i], cells_dir, cfg, console)
            if cached is not None:
                outcomes[i] = cached
            else:
                todo.append(i)
        if todo:
            for i, o in zip(todo, run_jobs([jobs[i] for i in todo], cells_dir, cfg, console)):
                outcomes[i] = o
        failed_refs |= {jobs[i].spec.reference_dir for i in group if jobs[i].spec.write_reference and not outcomes[i].ok}
    return [outcomes[i] for i in range(len(jobs))]


def pair_groups(jobs: list[CellJob]) -> list[list[int]]:
    """Job indices by (variant, runtime, role), in the order each pair first appears (the fp16 reference's first, so
    every reference is written before a cell reads it)."""
    groups: dict[tuple, list[int]] = {}
    for i, j in enumerate(jobs):
        groups.setdefault((j.variant, j.runtime, j.spec.role), []).append(i)
    return list(groups.values())


def _what(job: CellJob) -> tuple[str, str]:
    what = {"tasks": "lm-eval tasks", "long": f"long windows up to {job.spec.n_ctx} tokens",
            "instruct": f"{len(job.spec.gen_prompts or [])} instruction prompts"}.get(
        job.kind, f"{job.spec.n_ctx}-token windows")
    stage = {"tasks": "[tasks]", "long": "[long]", "instruct": "[instruct]"}.get(job.kind, "[eval]")
    return what, stage


def stored(job: CellJob, cells_dir: Path, cfg: RunConfig, console) -> CellOutcome | None:
    """The job's result from the run folder or the store (same key), said on the terminal; None to run it."""
    t0 = time.time()
    cached = None if cfg.force else load_cached(cells_dir, job)
    if cached:
        where = "" if measured_here(cached.measured_on) else \
            f", measured on {(cached.measured_on or {}).get('hostname', 'an unrecorded host')} (same device class and libraries)"
        console.line(f"{_what(job)[1]} {job.variant} × {job.runtime}: cached result reused (it took {cached.wall_s:.0f} s{where})")
        cached.run_s = time.time() - t0
    return cached


def run_jobs(jobs: list[CellJob], cells_dir: Path, cfg: RunConfig, console) -> list[CellOutcome]:
    """A pair's jobs in one subprocess, each said on the terminal as it starts and ends."""
    for job in jobs:
        what, stage = _what(job)
        console.line(f"{stage} {job.variant} × {job.runtime}: {what}, {cfg.eval.threads} threads"
                     + (" (same process, model loaded once)" if job is not jobs[0] else ""))
    outs = run_group(jobs, cells_dir, console, CELL_TIMEOUT_S, cfg.eval.threads)
    for job, o in zip(jobs, outs):
        stage = _what(job)[1]
        o.run_s = o.wall_s
        if o.ok:
            console.line(f"{stage} {job.variant} × {job.runtime}: done in {o.wall_s:.0f} s")
        elif o.unsupported:
            console.line(f"{stage} {job.variant} × {job.runtime}: not supported here: {o.unsupported}")
        else:
            console.alarm(f"{stage} {job.variant} × {job.runtime} FAILED: {o.error}")
    return outs


def without_reference(job: CellJob) -> None:
    """The fp16 reference this job reads failed: the job measures PPL and speed only, under a key of its own (a later run with a
    sound reference must not reuse its KLD-less result)."""
    if job.spec.reference_dir and not job.spec.write_reference:
        job.spec = job.spec.with_(reference_dir=None)
        job.key = without_reference_key(job.key)


def run_job(job: CellJob, cells_dir: Path, cfg: RunConfig, console, ref_ok: bool = True) -> CellOutcome:
    """One cell: its stored result when the store holds one under its key, else run in its own subprocess."""
    if not ref_ok:
        without_reference(job)
    return stored(job, cells_dir, cfg, console) or run_jobs([job], cells_dir, cfg, console)[0]
