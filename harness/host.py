"""Which machine and which libraries measured a result, so that a cached result is reused only where it
would come out the same, and is never shown as measured on another machine.

Three identities, from the loosest to the tightest:
- the environment of a runtime: every package installed in its interpreter's environment (a fingerprint
  of names and versions); a new torch or llama-cpp-python measures anew;
- the device class: what changes a quality figure's last digits (on a CPU the instruction sets that the
  kernels dispatch on, e.g. AVX2 against AVX-512 moves Q4_K_M's PPL in the 4th digit; on a GPU its model);
- the speed host: what changes a speed figure (CPU model, logical cores, memory, GPUs).

QC_HOST_IDENTITY (JSON with any of hostname, cpu_model, cpu_isa, cpu_logical, memory_bytes, gpus) overrides
what is read from the machine: the tests use it to play two hosts on one machine."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
import sys
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

# CPU features that ggml, oneDNN and torch's CPU kernels choose code paths by
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve", "sve2")


@dataclass(frozen=True)
class Host:
    hostname: str
    cpu_model: str
    cpu_isa: tuple[str, ...]
    cpu_logical: int
    memory_bytes: int | None
    gpus: tuple[str, ...]

    def device_class(self, device: str = "cpu") -> str:
        """What a quality figure depends on besides the libraries: the CPU's instruction sets, or the GPUs."""
        if device != "cpu" and self.gpus:
            return f"{device}:{'+'.join(sorted(set(self.gpus)))}"
        return f"cpu:{platform.machine()}:{'+'.join(self.cpu_isa) or 'baseline'}"

    def speed_class(self) -> str:
        """What a speed figure depends on: this kind of machine, not its name (identical runners share)."""
        mem = round((self.memory_bytes or 0) / 2**30)
        return f"{self.cpu_model}|{self.cpu_logical} cpus|{mem} GiB|{'+'.join(self.gpus) or 'no gpu'}"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["cpu_isa"] = list(self.cpu_isa)
        d["gpus"] = list(self.gpus)
        return d


def _cpu_flags() -> set[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def this_host() -> Host:
    from harness.provenance import cpu_model, gpus

    flags = _cpu_flags()
    try:
        import psutil

        mem = int(psutil.virtual_memory().total)
    except Exception:  # psutil missing: memory is left out of the identity
        mem = None
    host = Host(hostname=socket.gethostname(), cpu_model=cpu_model(), cpu_isa=tuple(f for f in ISA_FLAGS if f in flags),
                cpu_logical=os.cpu_count() or 1, memory_bytes=mem,
                gpus=tuple(g["name"] for g in (gpus() or [])))
    fake = os.environ.get("QC_HOST_IDENTITY")
    if fake:
        d = json.loads(fake)
        for k in ("cpu_isa", "gpus"):
            if k in d:
                d[k] = tuple(d[k])
        host = replace(host, **d)
    return host


def _site_packages(python: str) -> list[Path]:
    prefix = Path(python).parent.parent
    return sorted(prefix.glob("lib/python*/site-packages")) + sorted(prefix.glob("Lib/site-packages"))


@functools.lru_cache(maxsize=None)
def environment_fingerprint(python: str = sys.executable) -> dict:
    """Every package of the interpreter's environment: {"sha256": ..., "packages": n}. Read from the
    dist-info folders (no interpreter started); the harness's own interpreter is asked directly."""
    if Path(python) == Path(sys.executable):
        pkgs = sorted({f"{d.metadata['Name'].lower()}=={d.version}" for d in metadata.distributions()
                       if d.metadata and d.metadata["Name"]})
    else:
        pkgs = sorted({p.name[: -len(".dist-info")].lower() for sp in _site_packages(python)
                       for p in sp.glob("*.dist-info")})
    return {"sha256": hashlib.sha256("\n".join(pkgs).encode()).hexdigest(), "packages": len(pkgs)}


def measured_here(measured_on: dict | None) -> bool:
    """Whether a stored result was measured on this very machine (its name and kind)."""
    if not measured_on:
        return False
    h = this_host()
    return measured_on.get("hostname") == h.hostname and measured_on.get("speed_class") == h.speed_class()
