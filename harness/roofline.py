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


def measure_bandwidth(threads: int, n: int = 1 << 26, reps: int = 20) -> dict:
    """Best-of-reps triad a = b + s*c over float32 arrays of n elements (3 × 256 MB by default),
    run in its own process with the given thread count. STREAM counts 3 arrays moved per element."""
    p = subprocess.run([sys.executable, "-c", _TRIAD, str(threads), str(n), str(reps)],
                       capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": str(threads), "PATH": ""})
    if p.returncode != 0:
        raise RuntimeError(f"bandwidth probe failed: {p.stderr.strip()[-300:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    bps = r["bytes"] / r["seconds"]
    return {"method": "triad a = b + 3c (torch, float32)", "array_bytes": 4 * n, "threads": threads, "reps": reps,
            "bytes_s": bps, "gb_s": bps / 1e9}
