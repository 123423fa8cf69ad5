"""Where a decoded token's time goes on a GPU: torch.profiler's CUDA kernels of n decode steps (a
generation of n tokens, less as many kernels as the same prompt's prefill alone launches), per token: how many kernels ran, how
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
    """(name, microseconds) of every CUDA kernel or memory operation the profiler saw, in start order."""
    from torch.autograd import DeviceType

    ev = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    ev.sort(key=lambda e: e.time_range.start)
    return [(e.name, float(e.time_range.elapsed_us())) for e in ev]


def summarize(step_kernels: list[tuple[str, float]], steps: int, layers: int, wall_ms_per_token: float | None) -> dict:
    """Per-token figures from the kernels of `steps` decode steps."""
    kinds: dict[str, dict] = {}
    calls: dict[str, int] = {}
    for name, us in step_kernels:
        k = kinds.setdefault(kind_of(name), {"kernels": 0.0, "ms": 0.0})
        k["kernels"] += 1 / steps
        k["ms"] += us / steps / 1e3
        calls[name] = calls.get(name, 0) + 1
    kinds = {k: {"kernels": round(v["kernels"], 1), "ms": round(v["ms"], 4)} for k, v in kinds.items()}
    kernels = len(step_kernels) / steps
    busy = sum(us for _, us in step_kernels) / steps / 1e3
    # the output layer (vocabulary x hidden) is the slowest kernel that runs once or more per step: left out
    # of the per-layer time
    head_ms = max((us for name, us in step_kernels if calls[name] >= steps), default=0.0) / 1e3
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
    # the same prompt launches the same prefill kernels first: what follows them are the decode steps'
    step_kernels = dec[len(pre):]
    res = summarize(step_kernels, steps, layers, 1e3 * g.decode_s / steps)
    names: dict[str, float] = {}
    for name, us in step_kernels:
        names[name] = names.get(name, 0.0) + us
    res["top_kernels"] = [{"name": n[:120], "kind": kind_of(n), "ms_per_token": round(us / steps / 1e3, 4)}
                          for n, us in sorted(names.items(), key=lambda x: -x[1])[:8]]
    return res
