"""Peak GPU memory and GPU-busy share of one cell, the same way for every runtime (torch, llama.cpp, AutoAWQ):
nvidia-smi's used memory on the cell's GPU, sampled every 50 ms, minus what was in use before the
runtime loaded. It includes the CUDA context and every allocator's reserve — what a user would
see — not only live tensors. The busy share of a span is the mean of nvidia-smi's utilization.gpu
samples taken in it (the share of time one or more kernels ran, as the driver counts it)."""
from __future__ import annotations

import subprocess
import threading
import time


def _query(index: int) -> list[str]:
    return ["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits", "-i", str(index)]


def _parse(line: str) -> tuple[int, float | None]:
    parts = [x.strip() for x in line.split(",")]
    used = int(parts[0])
    try:
        util = float(parts[1])
    except (IndexError, ValueError):  # "[N/A]" on some virtual GPUs
        util = None
    return used, util


def _used_mib(index: int) -> int | None:
    try:
        out = subprocess.run(_query(index), capture_output=True, text=True, timeout=10)
        return _parse(out.stdout.strip().splitlines()[0])[0]
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


class GpuMemorySampler:
    """One `nvidia-smi -lms` process streams the used memory; a thread keeps the maximum."""

    def __init__(self, index: int = 0, period_ms: int = 50) -> None:
        self.index, self.period_ms = index, period_ms
        self.baseline = _used_mib(index)
        self.peak = self.baseline
        self.busy: list[tuple[float, float]] = []  # (time.perf_counter(), utilization %)
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                u, util = _parse(line)
            except (ValueError, IndexError):
                continue
            if util is not None:
                self.busy.append((time.perf_counter(), util))
            if self.peak is None or u > self.peak:
                self.peak = u

    def start(self) -> "GpuMemorySampler":
        if self.baseline is not None:
            self._proc = subprocess.Popen([*_query(self.index), "-lms", str(self.period_ms)],
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread.start()
        return self

    def stop(self) -> int | None:
        """Peak bytes used above the baseline, or None where nvidia-smi is not available."""
        if self._proc is None or self.baseline is None:
            return None
        last = _used_mib(self.index)
        if last is not None and last > (self.peak or 0):
            self.peak = last
        self._proc.terminate()
        self._thread.join(timeout=5)
        return (self.peak - self.baseline) * (1 << 20)

    def busy_share(self, t0: float, t1: float) -> float | None:
        """Mean utilization (0..1) of the samples taken between perf_counter() times t0 and t1; None: no sample."""
        got = [u for t, u in self.busy if t0 <= t <= t1]
        return round(sum(got) / len(got) / 100.0, 3) if got else None


def busy_shares(samplers, spans: dict) -> dict:
    """Per measure of the cell: the GPU-busy share (0..1), the mean over the cell's GPUs; None where unsampled."""
    out = {}
    for name, (a, b) in spans.items():
        got = [s.busy_share(a, b) for s in samplers]
        got = [g for g in got if g is not None]
        out[name] = round(sum(got) / len(got), 3) if got else None
    return out
