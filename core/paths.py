"""Where the project keeps its tool environments, caches and shipped data."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
WIKITEXT_TEST = DATA_DIR / "wikitext-2-raw-v1" / "wiki.test.raw"
CALIBRATION_TEXT = DATA_DIR / "calibration" / "general-512.jsonl"

# Tool environments made by `make setup` (each its own dependency world).
VENVS_DIR = Path(os.environ.get("QC_VENVS_DIR", REPO_ROOT / ".venvs"))
# llama.cpp source vendored by the pinned llama-cpp-python (converter + gguf-py).
LLAMA_CPP_SRC = Path(os.environ.get("QC_LLAMA_CPP_SRC", REPO_ROOT / ".cache" / "llama.cpp"))


def cache_dir() -> Path:
    """User-level cache for derived models (e.g. the embedded default's FP16 checkpoint)."""
    base = os.environ.get("QC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "quantcompare"
    )
    return Path(base)


def venv_python(name: str) -> Path:
    """Python interpreter of the tool environment `name` (autoawq, llmcompressor)."""
    return VENVS_DIR / name / "bin" / "python"


def die_with_parent() -> None:
    """preexec_fn for tool and cell subprocesses: the kernel kills them when the harness dies (a killed
    run leaves no orphan computing on, or writing where a resumed run works). Linux; elsewhere a no-op."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
