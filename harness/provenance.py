"""What ran where: versions, hardware, threads, git commit — recorded in results.json."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

from core.paths import REPO_ROOT

MAIN_PACKAGES = ("torch", "transformers", "llama_cpp_python", "numpy", "pandas", "matplotlib", "safetensors",
                 "tokenizers", "gguf", "compressed-tensors", "accelerate", "lm-eval", "datasets")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """HEAD (with -dirty for uncommitted changes), or QC_GIT_COMMIT where the sender of a copy names it:
    a copy's .git can be stale (the GPU host's copy said 1a101ea-dirty for a run of fba5d32)."""
    if os.environ.get("QC_GIT_COMMIT"):
        return os.environ["QC_GIT_COMMIT"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:  # a copy without .git: its sender names it with QC_GIT_COMMIT
            return "unknown"
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def gpus() -> list[dict] | None:
    """NVIDIA GPUs as nvidia-smi reports them, or None where there is none."""
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    keys = ("name", "memory_total", "driver", "max_sm_clock", "max_mem_clock")
    return [dict(zip(keys, (x.strip() for x in line.split(",")))) for line in p.stdout.strip().splitlines()]


def package_versions(names=MAIN_PACKAGES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def describe(threads: int, seed: int) -> dict:
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        mem = psutil.virtual_memory().total
    except Exception:
        physical, mem = None, None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_logical": os.cpu_count(),
        "cpu_physical": physical,
        "memory_bytes": mem,
        "gpu": gpus(),
        "gpu_topology": _topology_if_several(),
        "threads": threads,
        "seed": seed,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "omp_wait_policy": "PASSIVE in cells that load torch; llama.cpp cells keep OpenMP's default",
    }


def _topology_if_several() -> str | None:
    """How several GPUs are linked (`nvidia-smi topo -m`); None with one GPU or none."""
    g = gpus()
    if not g or len(g) < 2:
        return None
    from harness.gpu_plan import topology

    return topology()
