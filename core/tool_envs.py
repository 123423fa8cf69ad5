"""Tool environments that only some runs need (llm-compressor, vLLM) are made on first use by the
same make target a user would type, with one line saying so; a failure is one line naming it."""
from __future__ import annotations

import subprocess
from pathlib import Path

from core.errors import ToolMissing
from core.paths import REPO_ROOT, VENVS_DIR

TARGETS = {"vllm": "setup-vllm", "llmcompressor": "setup-llmcompressor", "autoawq": "setup"}


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
