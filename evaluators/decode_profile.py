"""Where a decoded token's time goes on a GPU: torch.profiler's CUDA kernels of n decode steps, less
those of the prefill alone (two generations, the same prompt), per token: how many kernels ran, how
long the GPU was busy, by kind of kernel, and the time of one decoder layer.

The GPU's busy time against the measured time per token says whether decode is bound by the kernels
(busy ≈ wall) or by launching them (busy << wall)."""
from __future__ import annotations

# kernel name fragments -> kind (first match wins)
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("int4 matmul (tinygemm)", ("tinygemm", "int4")),
    ("attention", ("flash", "fmha", "attention", "sdpa", "softmax")),
    ("dense matmul (cuBLAS/CUTLASS)", ("gemv", "gemm", "cutlass", "xmma", "cublas", "sm90_", "sm80_", "splitk")),
    ("fused by inductor (Triton)", ("triton_",)),
    ("copies and fills", ("memcpy", "memset", "copy", "fill")),
)


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, frags in KINDS:
        if any(f in low for f in frags):
            return kind
    return "other elementwise/reductions"


def _kernels(prof) -> list[tuple[str, float]]:
    """(name, microseconds) of every CUDA kernel or memory operation the profiler saw."""
    from torch.autograd import DeviceType

    return [(e.name, float(e.time_range.elapsed_us())) for e in prof.events() if e.device_type == DeviceType.CUDA]


def summarize(decode: list[tuple[str, float]], prefill: list[tuple[str, float]], steps: int, layers: int,
              wall_ms_per_token: float | None) -> dict:
    """Per-token figures from the kernels of (prefill + steps decodes) and of the prefill alone."""
    def by_kind(ev):
        acc: dict[str, list[float]] = {}
        for name, us in ev:
            k = acc.setdefault(kind_of(name), [0, 0.0])
            k[0] += 1
            k[1] += us
        return acc

    d, p = by_kind(decode), by_kind(prefill)
    kinds = {}
    for k in d:
        n = (d[k][0] - p.get(k, [0, 0.0])[0]) / steps
        ms = (d[k][1] - p.get(k, [0, 0.0])[1]) / steps / 1e3
        if n > 0 or ms > 0:
            kinds[k] = {"kernels": round(n, 1), "ms": round(ms, 4)}
    kernels = sum(v["kernels"] for v in kinds.values())
    busy = sum(v["ms"] for v in kinds.values())
    # the output layer (vocabulary x hidden) is the slowest single kernel of a decode step: left out of the
    # per-layer time. Per kernel name: calls and time of the decode steps alone (decode run less prefill run)
    calls: dict[str, list[float]] = {}
    for sign, events in ((1, decode), (-1, prefill)):
        for name, us in events:
            c = calls.setdefault(name, [0, 0.0])
            c[0] += sign
            c[1] += sign * us
    head_ms = max((us for name, us in decode if calls[name][0] >= steps), default=0.0) / 1e3
    out = {"steps": steps, "kernels_per_token": round(kernels, 1), "gpu_busy_ms_per_token": round(busy, 4),
           "largest_kernel_ms": round(head_ms, 4), "by_kind": kinds,
           "per_layer_ms": round(max(busy - head_ms, 0.0) / layers, 4) if layers else None,
           "kernels_per_layer": round(kernels / layers, 1) if layers else None}
    if wall_ms_per_token:
        out["wall_ms_per_token"] = round(wall_ms_per_token, 4)
        out["gpu_busy_pct_of_wall"] = round(100 * busy / wall_ms_per_token, 1)
    return out


def profile_decode(rt, prompt: list[int], steps: int = 16) -> dict | None:
    """Profile one torch runtime's decode on CUDA (None elsewhere). A profiler that fails leaves the cell's
    measurements alone: its error is the result."""
    try:
        return _profile(rt, prompt, steps)
    except Exception as e:  # noqa: BLE001 (a profile is an extra, never a reason to lose the cell)
        return {"error": f"{type(e).__name__}: {e}"[:300]}


def _profile(rt, prompt: list[int], steps: int) -> dict | None:
    torch = getattr(rt, "torch", None)
    if torch is None or getattr(rt, "device", "cpu") == "cpu":
        return None
    from torch.profiler import ProfilerActivity, profile

    def kernels_of(n: int):
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            g = rt.generate(prompt, n)
            torch.cuda.synchronize()
        return _kernels(prof), g

    rt.generate(prompt, steps)  # warm (graphs recorded, caches sized)
    pre, _ = kernels_of(0)
    dec, g = kernels_of(steps)
    layers = int(getattr(rt.model.config, "num_hidden_layers", 0) or 0)
    res = summarize(dec, pre, steps, layers, 1e3 * g.decode_s / steps)
    names: dict[str, float] = {}
    for sign, events in ((1, dec), (-1, pre)):  # the decode steps' kernels only
        for name, us in events:
            names[name] = names.get(name, 0.0) + sign * us
    res["top_kernels"] = [{"name": n[:120], "kind": kind_of(n), "ms_per_token": round(us / steps / 1e3, 4)}
                          for n, us in sorted(names.items(), key=lambda x: -x[1])[:8]]
    return res
