"""The INT4 kernel candidates, measured before one is chosen (issue 14): for every linear layer of the
Qwen3-4B shape, at 1 and 8 rows of activations, the time of

- float16 F.linear (cuBLAS), the fp16 baseline;
- torch's own INT4 weight-only kernel, aten._weight_int4pack_mm ("tinygemm", bfloat16), with 2, 4 and 8
  inner k-tiles (the packing's load width);
- AutoAWQ 0.2.9's Triton GEMM (awq_gemm_triton, split-k 8, as AutoAWQ calls it), when its file is given.

Each kernel runs inside one CUDA graph over enough copies of the weights to overflow the 60 MB L2, so the
figure is what a kernel costs inside a captured decode step: no launch overhead, weights read from HBM.
torchao's int4 weight-only (tensor-core-tiled layout) calls the same aten kernel, so it is not a separate
candidate. Usage: python3 int4_kernels.py OUT.json [path/to/awq/modules/triton/gemm.py]"""
from __future__ import annotations

import importlib.util
import json
import statistics
import sys

import torch

from evaluators.backends.int4_tinygemm import Int4Linear, pack_awq

HIDDEN, HEADS, KV, HEAD_DIM, INTER = 2560, 32, 8, 128, 9728
# (name, out features, in features) of one decoder layer
LAYER = [("q_proj", HEADS * HEAD_DIM, HIDDEN), ("k_proj", KV * HEAD_DIM, HIDDEN), ("v_proj", KV * HEAD_DIM, HIDDEN),
         ("o_proj", HIDDEN, HEADS * HEAD_DIM), ("gate_proj", INTER, HIDDEN), ("up_proj", INTER, HIDDEN),
         ("down_proj", HIDDEN, INTER)]
GROUP = 128
L2_BYTES = 256 << 20  # rotate over at least this many bytes of weights


def graph_time_us(fn_list, reps: int = 20) -> float:
    """Median time per call of a CUDA graph that calls every fn once."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for f in fn_list:
            f()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for f in fn_list:
            f()
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / len(fn_list))
    return statistics.median(times)


def random_awq(k: int, n: int, gen) -> tuple:
    qw = torch.randint(-2**31, 2**31 - 1, (k, n // 8), generator=gen, dtype=torch.int64).to(torch.int32)
    qz = torch.randint(-2**31, 2**31 - 1, (k // GROUP, n // 8), generator=gen, dtype=torch.int64).to(torch.int32)
    sc = (torch.rand(k // GROUP, n, generator=gen) * 0.004 + 0.002).half()
    return qw.cuda(), qz.cuda(), sc.cuda()


def main(out_path: str, awq_file: str | None) -> None:
    awq = None
    if awq_file:
        spec = importlib.util.spec_from_file_location("awq_triton_gemm", awq_file)
        awq = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(awq)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for name, n, k in LAYER:
        for m in (1, 8):
            rec = {"layer": name, "out": n, "in": k, "rows": m}
            x16 = torch.randn(m, k, device="cuda", dtype=torch.float16)
            xbf = x16.to(torch.bfloat16)
            copies = max(2, -(-L2_BYTES // (n * k * 2)))
            ws = [torch.randn(n, k, device="cuda", dtype=torch.float16) * 0.02 for _ in range(copies)]
            rec["fp16_us"] = graph_time_us([lambda w=w: torch.nn.functional.linear(x16, w) for w in ws])
            del ws
            qw, qz, sc = random_awq(k, n, gen)
            copies4 = max(2, -(-L2_BYTES // (n * k // 2)))
            for tiles in (2, 4, 8):
                layer = Int4Linear(pack_awq(qw, qz, sc, GROUP, torch.bfloat16, inner_k_tiles=tiles))
                layers = [layer] + [Int4Linear(pack_awq(qw, qz, sc, GROUP, torch.bfloat16, inner_k_tiles=tiles))
                                    for _ in range(copies4 - 1)]
                rec[f"tinygemm_k{tiles}_us"] = graph_time_us([lambda lay=lay: lay(xbf) for lay in layers])
                if tiles == 8:  # exactness on this GPU: the kernel against the dequantized weights
                    from evaluators.backends.int4_tinygemm import check_layer

                    rec["tinygemm_rel_err"] = check_layer(layer, qw, qz, sc, GROUP)["rel_err"]
                del layers
            if awq is not None:
                sets = [(qw, qz, sc)] + [random_awq(k, n, gen) for _ in range(copies4 - 1)]
                rec["awq_triton_us"] = graph_time_us(
                    [lambda s=s: awq.awq_gemm_triton(x16, s[0], s[2], s[1], split_k_iters=8) for s in sets])
                del sets
            rec["fp16_bytes"] = n * k * 2
            rec["int4_bytes"] = n * k // 2 + (k // GROUP) * n * 4  # packed weights + bf16 scale and zero
            rows.append(rec)
            torch.cuda.empty_cache()
    summary = {}
    for m in (1, 8):
        sel = [r for r in rows if r["rows"] == m]
        summary[str(m)] = {key: sum(r[key] for r in sel) for key in sel[0] if key.endswith("_us")}
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "group": GROUP, "rows": rows,
           "per_layer_us": summary}
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)
    keys = [k for k in rows[0] if k.endswith("_us")]
    print("layer      rows " + " ".join(f"{k[:-3]:>14}" for k in keys) + "   (us; GB/s of fp16 / int4 bytes)")
    for r in rows:
        cells = []
        for key in keys:
            b = r["fp16_bytes"] if key.startswith("fp16") else r["int4_bytes"]
            cells.append(f"{r[key]:6.1f} ({b / r[key] / 1e3:5.0f})")
        print(f"{r['layer']:<10} {r['rows']:>4} " + " ".join(f"{c:>14}" for c in cells) + f"  err {r['tinygemm_rel_err']:.1e}")
    for m, s in summary.items():
        print(f"one layer, {m} row(s): " + ", ".join(f"{k[:-3]} {v:.1f} us" for k, v in s.items()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
