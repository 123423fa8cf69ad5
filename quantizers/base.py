"""The quantizer adapter interface and the manifest every artifact carries."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core import interrupts
from core.registry import plugin_source_sha256

MANIFEST = "manifest.json"


@dataclass
class Manifest:
    """What was made, from what, by which tool, how: enough to trust or rebuild an artifact."""

    variant: str
    format: str  # hf-safetensors | gguf | hf-awq-gemm | hf-compressed-tensors
    artifact: str  # path of the model file or folder, relative to the variant folder
    tool: str
    tool_versions: dict[str, str]
    recipe: dict[str, Any]
    source_sha256: str
    cache_key: str
    wall_time_s: float
    size_bytes: int
    calibration_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    files: dict[str, list] = field(default_factory=dict)  # path in the folder -> [bytes, sha256]
    manifest_sha256: str = ""  # of every other field: a hand-edited manifest is not trusted

    def as_dict(self) -> dict:
        return asdict(self)

    def _digest(self) -> str:
        d = {k: v for k, v in self.as_dict().items() if k != "manifest_sha256"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        data = json.loads((folder / MANIFEST).read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def save(self, folder: Path) -> None:
        """Record every file's size and sha256, seal the manifest, write it atomically."""
        self.files = {}
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.name not in (MANIFEST, MANIFEST + ".tmp"):
                self.files[f.relative_to(folder).as_posix()] = [f.stat().st_size, file_sha256(f)]
        self.manifest_sha256 = self._digest()
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2))
        tmp.replace(folder / MANIFEST)

    def problem(self, folder: Path) -> str | None:
        """Why this cached artifact must not be used (None when it is whole): an edited manifest, a
        missing or resized file, or a file changed after the build (its sha256 is checked then)."""
        if not self.files or self.manifest_sha256 != self._digest():
            return "its manifest was edited or written by another version"
        for rel, (size, sha) in self.files.items():
            f = folder / rel
            try:
                st = f.stat()
            except OSError:
                return f"{rel} is missing"
            if st.st_size != size:
                return f"{rel} has {st.st_size:,} bytes, the manifest says {size:,} (truncated?)"
            if st.st_mtime > self.created_at + 1 and file_sha256(f) != sha:
                return f"{rel} changed after it was built (sha256 differs)"
        return None


@dataclass
class BuildContext:
    """What an adapter may use: the source, finished upstream variants, calibration, threads."""

    source: Any  # harness.source.Source
    upstream: dict[str, tuple[Path, Manifest]]
    calibration: Path
    threads: int
    log: Any = print
    progress: Any = None  # callable(str): one in-place progress line
    device_class: str = ""  # where the tool computes (CPU instruction sets or GPU model), for tools whose bytes depend on it
    sensitivity: Path | None = None  # measured tensor-group sensitivity (harness/sensitivity.py), for gguf-mix variants


class QuantizerError(RuntimeError):
    """A quantization tool failed; the message says which and why."""


class Quantizer(ABC):
    """One adapter per output format."""

    variant: str
    needs: tuple[str, ...] = ()
    # the tool's output bytes depend on the device it computes on (floating-point calibration whose sums
    # round differently with other SIMD widths: AutoAWQ, llama-imatrix); such artifacts are keyed by it
    device_dependent: bool = False

    @abstractmethod
    def recipe(self, ctx: BuildContext) -> dict[str, Any]:
        """Everything that changes the artifact's bytes, besides the source and tool versions."""

    @abstractmethod
    def tool_versions(self) -> dict[str, str]:
        """Versions of the tools that write the artifact."""

    @abstractmethod
    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        """Write the artifact into `dest` (an empty folder) and return its manifest."""

    def cache_key(self, ctx: BuildContext) -> str:
        parts = {
            "variant": self.variant,
            "source": ctx.source.sha256,
            "recipe": self.recipe(ctx),
            "tools": self.tool_versions(),
            "upstream": {k: m.cache_key for k, (_, m) in sorted(ctx.upstream.items()) if k in self.needs},
        }
        if self.device_dependent:
            parts["device_class"] = ctx.device_class
        plugin = plugin_source_sha256(type(self))
        if plugin:  # a --plugins quantizer's own code
            parts["quantizer_source"] = plugin
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def folder_size(path: Path) -> int:
    """Bytes of the model weights: a GGUF file whole (its vocabulary included), or a folder's
    weight files (tokenizer and config files are not counted)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".bin"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def run_tool(cmd: list[str], what: str, env: dict | None = None, cwd: Path | None = None,
             on_line: Callable[[str], None] | None = None) -> str:
    """Run a tool subprocess; feed each output line (tqdm's carriage-return updates too) to
    `on_line`; return the whole output, or raise QuantizerError with its last lines."""
    full_env = dict(os.environ)
    full_env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        full_env.update(env)
    from core.paths import die_with_parent

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                            preexec_fn=die_with_parent)
    lines: list[str] = []
    pending = b""
    try:
        while True:
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            parts = re.split(rb"[\r\n]", pending + chunk)
            pending = parts.pop()
            for raw in parts:
                line = raw.decode("utf-8", errors="replace").strip()
                if line:
                    lines.append(line)
                    if on_line:
                        on_line(line)
    except BaseException:  # interrupted: the tool is gone before its output folder is removed (it could remake it)
        proc.kill()
        proc.wait(timeout=60)
        raise
    if pending.strip():
        lines.append(pending.decode("utf-8", errors="replace").strip())
    rc = proc.wait()
    if rc != 0:
        interrupts.check()  # the tool died of the Ctrl-C that reached its process group too
        full = " ".join(lines[-40:])
        short_write = re.search(r"\d+ requested and \d+ written", full)  # numpy's tofile on a full disk
        if short_write or any(m in full for m in ("No space left on device", "File too large", "Disk quota exceeded")):
            from core.errors import UserError

            raise UserError(f"{what} ran out of disk space while writing its output; free some disk "
                            "(`quantcompare cache prune`) and run again: finished work is kept and reused")
        tail = " | ".join(l for l in lines[-4:])
        raise QuantizerError(f"{what} failed (exit {rc}): {tail[-600:]}")
    return "\n".join(lines)
