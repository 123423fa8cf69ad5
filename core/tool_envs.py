"""The tool environments, in one table: each tool with dependencies of its own (AutoAWQ, llm-compressor, vLLM)
lives in `.venvs/<name>`, made by a make target from `requirements/<name>.txt`. One that only some runs need is
made on first use by the same target a user would type, with one line saying so; a failure is one line
naming it. The harness's own environment (.venv) and llama.cpp's tools are listed for the stage table."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.errors import ToolMissing
from core.paths import REPO_ROOT, VENVS_DIR



@dataclass(frozen=True)
class ToolEnv:
    name: str
    target: str  # the make target that makes it
    stamp: Path  # written by make when the install finished, holding the seconds it took
    label: str  # as the stage table names its install


ENVIRONMENTS = {
    "main": ToolEnv("main", "setup", REPO_ROOT / ".venv" / ".installed",
                    "install .venv (harness, transformers, llama-cpp-python)"),
    "autoawq": ToolEnv("autoawq", "setup", VENVS_DIR / "autoawq" / ".installed", "install .venvs/autoawq"),
    "llmcompressor": ToolEnv("llmcompressor", "setup-llmcompressor", VENVS_DIR / "llmcompressor" / ".installed",
                             "install .venvs/llmcompressor"),
    "vllm": ToolEnv("vllm", "setup-vllm", VENVS_DIR / "vllm" / ".installed", "install .venvs/vllm"),
    "ray": ToolEnv("ray", "setup-ray", REPO_ROOT / ".venv" / ".ray-installed", "install Ray into .venv (--executor ray)"),
    "llama-libs": ToolEnv("llama-libs", "setup", REPO_ROOT / ".cache" / "llama.cpp-build" / ".libs-built",
                          "build llama.cpp libraries (libllama, libggml)"),
    "llama-tools": ToolEnv("llama-tools", "tools", REPO_ROOT / ".cache" / "llama.cpp-build" / ".built",
                           "build llama.cpp tools"),
}
TARGETS = {name: e.target for name, e in ENVIRONMENTS.items()}


def env_python(name: str, log=print) -> Path:
    """The interpreter of tool environment `name`, made with `make <target>` when it is missing."""
    py = VENVS_DIR / name / "bin" / "python"
    stamp = VENVS_DIR / name / ".installed"
    if py.is_file() and stamp.is_file():
        return py
    target = TARGETS.get(name, "setup")
    if VENVS_DIR != REPO_ROOT / ".venvs":  # environments kept elsewhere ($QC_VENVS_DIR) are not ours to make
        raise ToolMissing(f"the {name} environment is missing ({py.parent.parent}); make it with `make {target}`")
    log(f"[setup] the {name} environment is not made yet: running `make {target}` (once; several minutes)")
    p = subprocess.run(["make", "-C", str(REPO_ROOT), target], capture_output=True, text=True)
    if p.returncode != 0 or not py.is_file():
        tail = " | ".join((p.stdout + p.stderr).strip().splitlines()[-2:])
        raise ToolMissing(f"`make {target}` failed, so the {name} environment is missing: {tail[-300:]}")
    return py
