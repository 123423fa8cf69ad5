"""llama.cpp's own command-line tools (llama-imatrix, llama-quantize, ...), built by `make tools` from
the very source that the pinned llama-cpp-python vendors; built on first use, with one line saying so."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from core.errors import ToolMissing
from core.paths import REPO_ROOT

TOOLS_BIN = Path(os.environ.get("QC_LLAMA_TOOLS", REPO_ROOT / ".cache" / "llama.cpp-build" / "bin"))
IMATRIX_VARIANT = "gguf-imatrix"  # an artifact that only other variants read (never evaluated)


def llama_tool(name: str, log=print) -> Path:
    """Path of a llama.cpp tool; runs `make tools` once when it is missing."""
    path = TOOLS_BIN / name
    if path.is_file():
        return path
    log(f"[tools] {name} is not built yet: running `make tools` (llama.cpp's tools from the vendored source, "
        "a few minutes once)")
    p = subprocess.run(["make", "-C", str(REPO_ROOT), "tools"], capture_output=True, text=True)
    if p.returncode != 0 or not path.is_file():
        tail = " | ".join((p.stdout + p.stderr).strip().splitlines()[-3:])
        raise ToolMissing(f"llama.cpp tool {name} could not be built (`make tools` failed: {tail[-300:]})")
    return path
