"""The decode step's kernel choices, measured on the card before the comparison runs (issue 23):

1. the one-token attention kinds of evaluators/backends/decode_attention.py, each compiled by
   torch.compile and checked against SDPA over the filled slots, at batch 1 (a 768-slot cache, the
   timed run's) and batch 8 (384 slots), float16 and bfloat16 (AWQ's activations);
2. one Qwen3-4B-shape layer's projections at 1 and 8 rows, unfused (q, k, v, gate, up apart) and fused
   (q/k/v, gate/up), float16 through cuBLAS and INT4 through tinygemm (8 inner k-tiles).

Each kernel runs inside one CUDA graph over 36 layers' worth of distinct buffers (more than the 60 MB
L2), so a figure is what it costs inside the captured decode step. The fastest attention kind (float16,
batch 1) is written to WINNER_FILE for the comparison's --compiled-attention.
Usage: python3 decode_kernels.py OUT.json WINNER_FILE"""
from __future__ import annotations

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from int4_kernels import GROUP, L2_BYTES, graph_time_us  # noqa: E402 (the issue-14 script's helpers)

from evaluators.backends.decode_attention import KINDS, attend_many, attend_one  # noqa: E402
from evaluators.backends.int4_tinygemm import Int4Linear, pack_awq  # noqa: E402

HIDDEN, HEADS, KV, HEAD_DIM, INTER, LAYERS = 2560, 32, 8, 128, 9728, 36
DEV = os.environ.get("QC_KERNELS_DEVICE", "cuda")  # cpu: to try this script here (host-timed, fewer layers)
if DEV == "cpu":
    import time

    LAYERS, L2_BYTES = 2, 1 << 20

    def graph_time_us(fns, reps: int = 3) -> float:  # noqa: F811
        t = time.perf_counter()
        for _ in range(reps):
            for f in fns:
                f()
        return (time.perf_counter() - t) / reps / len(fns) * 1e6
UNFUSED = [("q_proj", HEADS * HEAD_DIM), ("k_proj", KV * HEAD_DIM), ("v_proj", KV * HEAD_DIM),
           ("gate_proj", INTER), ("up_proj", INTER)]
FUSED = [("qkv_proj", (HEADS + 2 * KV) * HEAD_DIM), ("gate_up_proj", 2 * INTER)]
SHARED = [("o_proj", HIDDEN, HEADS * HEAD_DIM), ("down_proj", HIDDEN, INTER)]


def random_awq(k: int, n: int, gen) -> tuple:
    """Random AWQ GEMM tensors (every 4-bit value possible) of a k -> n layer, on DEV."""
    qw = torch.randint(-2**31, 2**31 - 1, (k, n // 8), generator=gen, dtype=torch.int64).to(torch.int32)
    qz = torch.randint(-2**31, 2**31 - 1, (k // GROUP, n // 8), generator=gen, dtype=torch.int64).to(torch.int32)
    sc = (torch.rand(k // GROUP, n, generator=gen) * 0.004 + 0.002).half()
    return qw.to(DEV), qz.to(DEV), sc.to(DEV)


def attention(dtype) -> list[dict]:
    rows = []
    for batch, slots in ((1, 768), (8, 384)):
        filled = slots - 100  # a cache part-filled: unfilled slots hold random values the mask must hide
        q = torch.randn(batch, HEADS, 1, HEAD_DIM, device=DEV, dtype=dtype)
        caches = [(torch.randn(batch, KV, slots, HEAD_DIM, device=DEV, dtype=dtype),
                   torch.randn(batch, KV, slots, HEAD_DIM, device=DEV, dtype=dtype)) for _ in range(LAYERS)]
        mask = (torch.arange(slots, device=DEV) < filled)[None, None, None].expand(batch, 1, 1, slots)
        k0, v0 = caches[0]
        ref = attend_many(q.float(), k0[:, :, :filled].float(), v0[:, :, :filled].float(), None, HEAD_DIM ** -0.5)
        for kind in [k for k in KINDS if DEV == "cuda" or k != "sdpa-efficient"]:
            rec = {"kind": kind, "batch": batch, "slots": slots, "dtype": str(dtype).replace("torch.", "")}
            torch._dynamo.reset()  # each kind compiled afresh (one lambda's code object serves them all)
            try:
                fn = torch.compile(lambda q, k, v, m, kind=kind: attend_one(q, k, v, m, HEAD_DIM ** -0.5, kind),
                                   fullgraph=True, dynamic=False)
                out = fn(q, k0, v0, mask).float()
                rec["rel_err"] = float((out - ref).norm() / ref.norm())
                rec["us"] = graph_time_us([lambda k=k, v=v: fn(q, k, v, mask) for k, v in caches])
            except Exception as e:  # noqa: BLE001 (a kind that fails here is recorded, not fatal)
                rec["error"] = f"{type(e).__name__}: {e}"[:300]
            rows.append(rec)
            print(rec, flush=True)
        del caches
        torch.cuda.empty_cache()
    return rows


def projections() -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name, n, k in [(nm, n, HIDDEN) for nm, n in UNFUSED + FUSED] + SHARED:
        for m in (1, 8):
            rec = {"layer": name, "out": n, "in": k, "rows": m}
            x16 = torch.randn(m, k, device=DEV, dtype=torch.float16)
            ws = [torch.randn(n, k, device=DEV, dtype=torch.float16) * 0.02
                  for _ in range(max(2, -(-L2_BYTES // (n * k * 2))))]
            rec["fp16_us"] = graph_time_us([lambda w=w: torch.nn.functional.linear(x16, w) for w in ws])
            del ws
            qw, qz, sc = random_awq(k, n, gen)
            layers = [Int4Linear(pack_awq(qw, qz, sc, GROUP, torch.bfloat16 if DEV == "cuda" else torch.float32))
                      for _ in range(max(2, -(-L2_BYTES // (n * k // 2))))]
            xbf = x16.to(torch.bfloat16)
            rec["int4_us"] = graph_time_us([lambda lay=lay: lay(xbf if DEV == "cuda" else x16.float()) for lay in layers])
            del layers
            rec["fp16_gb_s"] = round(n * k * 2 / rec["fp16_us"] / 1e3, 1)
            rec["int4_gb_s"] = round((n * k // 2 + (k // GROUP) * n * 4) / rec["int4_us"] / 1e3, 1)
            rows.append(rec)
            print(rec, flush=True)
            torch.cuda.empty_cache()
    return rows


def per_layer(rows: list[dict]) -> dict:
    out = {}
    for m in (1, 8):
        t = {r["layer"]: r for r in rows if r["rows"] == m}
        for key in ("fp16_us", "int4_us"):
            shared = t["o_proj"][key] + t["down_proj"][key]
            out[f"{key[:-3]}_rows{m}_unfused_us"] = round(sum(t[n][key] for n, _ in UNFUSED) + shared, 1)
            out[f"{key[:-3]}_rows{m}_fused_us"] = round(sum(t[n][key] for n, _ in FUSED) + shared, 1)
    return out


def main(out_path: str, winner_path: str) -> None:
    res = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu", "torch": torch.__version__,
           "attention": attention(torch.float16) + attention(torch.bfloat16)}
    ok = [r for r in res["attention"] if r["batch"] == 1 and r["dtype"] == "float16" and "us" in r
          and r["rel_err"] < 1e-2]
    res["attention_winner"] = min(ok, key=lambda r: r["us"])["kind"] if ok else "sdpa"
    res["projections"] = projections()
    res["per_layer"] = per_layer(res["projections"])
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)
    with open(winner_path, "w") as f:
        f.write(res["attention_winner"])
    print("attention, us per layer:")
    for r in res["attention"]:
        print(f"  {r['dtype']:<9} b{r['batch']} {r['kind']:<15} " +
              (f"{r['us']:7.2f}  err {r['rel_err']:.1e}" if "us" in r else r.get("error", "")))
    print("winner:", res["attention_winner"])
    print("projections per layer:", res["per_layer"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
