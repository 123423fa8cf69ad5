"""Before the long job (issue 23): the fused decoder on this GPU, on a small random Qwen3 (4 layers,
head_dim 128), in float16 and as AWQ INT4: its compiled, graph-captured step against transformers'
eager forward of the same model, and its greedy tokens against transformers' own decoding.
Exits 1 on any failure, so the job stops before spending the lease. Usage: python3 gpu_smoke.py TOKENIZER_DIR"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository before any site 'tests' package
from evaluators.backends.compiled_backend import CompiledRuntime
from evaluators.backends.transformers_backend import TransformersRuntime
from tests.tiny_models import make_random_awq, make_tiny_model


DEV = os.environ.get("QC_SMOKE_DEVICE", "cuda")  # cpu: to try this script here


def main(tok: str) -> int:
    tmp = Path(tempfile.mkdtemp())
    model = make_tiny_model(tmp / "qwen3", "qwen3", Path(tok), hidden=512, layers=4)
    awq = make_random_awq(model, tmp / "awq")
    prompt, failed = list(range(200, 264)), 0
    for path, fmt, tol in ((model, "hf-safetensors", 0.01), (awq, "hf-awq-gemm", 0.05)):
        rt = CompiledRuntime(device=DEV, batch1_len=0)
        t = time.perf_counter()
        rt.load(path, fmt, 4, 512)
        check = rt.check_decode(prompt[:32], 16)
        setup = time.perf_counter() - t
        g = rt.generate(prompt, 64)
        ref = TransformersRuntime(device=DEV) if fmt == "hf-safetensors" else None
        same = None
        if ref is not None:
            ref.load(path, fmt, 4, 512)
            same = sum(a == b for a, b in zip(g.tokens, ref.generate(prompt, 64).tokens))
        b8 = rt.generate_batch([prompt] * 8, 16)
        ok = check["rel_mean_err"] < tol and check["top1_agreement"] >= 0.9 and b8.tokens == g.tokens[:17]
        failed += not ok
        print(f"{'OK' if ok else 'FAIL'} {fmt}: check {check}, tokens equal to transformers' {same}/65, "
              f"{64 / g.decode_s:.0f} tok/s, load+compile+check {setup:.1f} s, compile {rt.compile_seconds()}, "
              f"notes {rt.notes}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
