"""Memory bandwidth of this machine (a STREAM-like triad), for the decode roofline: at batch 1 every
weight byte is read once per generated token, so bandwidth / weight bytes bounds decode tok/s."""
from __future__ import annotations

import json
import subprocess
import sys

_TRIAD = r"""
import json, sys, time, torch
threads, n, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
a, b, c = torch.empty(n), torch.rand(n), torch.rand(n)
best = float("inf")
for _ in range(reps):
    t0 = time.perf_counter()
    torch.add(b, c, alpha=3.0, out=a)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "bytes": 3 * 4 * n}))
"""

# GPU: a device-to-device copy of a large buffer (bytes read + bytes written), timed with CUDA events.
_COPY = r"""
import json, sys, torch
n, reps = int(sys.argv[1]), int(sys.argv[2])
src = torch.empty(n, dtype=torch.uint8, device="cuda"); dst = torch.empty_like(src)
for _ in range(3):
    dst.copy_(src)
torch.cuda.synchronize()
best = float("inf")
for _ in range(reps):
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); dst.copy_(src); e1.record(); torch.cuda.synchronize()
    best = min(best, e0.elapsed_time(e1) / 1e3)
print(json.dumps({"seconds": best, "bytes": 2 * n, "gpu": torch.cuda.get_device_name()}))
"""


def measure_bandwidth(threads: int, n: int = 1 << 26, reps: int = 20, device: str = "cpu") -> dict:
    """Best-of-reps triad a = b + s*c over float32 arrays of n elements (3 × 256 MB by default),
    run in its own process with the given thread count. STREAM counts 3 arrays moved per element.
    On cuda: the best of 20 copies of a 2 GiB buffer, counting bytes read and written."""
    if device != "cpu":
        return _gpu_bandwidth(2 << 30, reps)
    p = subprocess.run([sys.executable, "-c", _TRIAD, str(threads), str(n), str(reps)],
                       capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": str(threads), "PATH": ""})
    if p.returncode != 0:
        raise RuntimeError(f"bandwidth probe failed: {p.stderr.strip()[-300:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    bps = r["bytes"] / r["seconds"]
    return {"method": "triad a = b + 3c (torch, float32)", "array_bytes": 4 * n, "threads": threads, "reps": reps,
            "bytes_s": bps, "gb_s": bps / 1e9}


def _gpu_bandwidth(n: int, reps: int) -> dict:
    p = subprocess.run([sys.executable, "-c", _COPY, str(n), str(reps)], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"GPU bandwidth probe failed: {p.stderr.strip()[-300:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    bps = r["bytes"] / r["seconds"]
    return {"method": f"device-to-device copy, bytes read + written (torch, {r['gpu']})", "array_bytes": n,
            "reps": reps, "bytes_s": bps, "gb_s": bps / 1e9, "device": "cuda"}
