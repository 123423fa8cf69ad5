#!/bin/bash
# Issue 15's code on ONE GPU (no multi-GPU machine was lent): run ON the GPU host from the repository root,
# with the H100/H200 payload in .device/ (measurements/h100-qwen3-4b-shape/prepare_payload.sh; carry [".device"]).
#   1. the fit check: fp16 Llama-70B shape on one H200 must stop before anything is built, with one line;
#   2. a tensor-parallel cell launched by torchrun with NCCL (world size 1) scores the same windows as the
#      single-process cell, and writes its result once;
#   3. a compare run with --gpus 1 records each cell's GPUs and layout.
set -u
ROOT=$PWD
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
DEV=/tmp/qc-device
rm -rf "$DEV" && cp -r .device "$DEV"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $DEV/whl-main/*.whl
export PYTHONPATH=/tmp/site:$ROOT HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 QC_CACHE_DIR=$ROOT/runs/.qc-cache
export QC_STORE_DIR=$ROOT/runs/.qc-store QC_VENVS_DIR=/tmp/venvs
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
{
  date; nvidia-smi --query-gpu=name,memory.total --format=csv; nvidia-smi topo -m
  echo "== 1. fit check"
  python3 -m harness.cli compare --synthetic-weights llama-70b --device cuda --gpus 1 --out runs/fit70b
  echo "exit $?"
  echo "== 2. tensor-parallel cell (torchrun, NCCL) against one process"
  python3 - <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from evaluators.windows import Windows
from harness.cells import CellJob, run_cell
from harness.synthetic import build_synthetic_source

src = build_synthetic_source("tiny-qwen3", Path("runs/.qc-cache/models"), Path("/tmp/qc-device/tokenizer"))
win = Windows(np.random.default_rng(0).integers(3, 49000, size=(4, 256)).astype(np.int32), first=128, bos_id=None)
Path("runs/dry").mkdir(parents=True, exist_ok=True)
win.save(Path("runs/dry/w.npz"))
spec = {"variant": "fp16", "runtime": "transformers", "format": "hf-safetensors", "artifact": str(src),
        "windows": "runs/dry/w.npz", "n_ctx": 256, "threads": 4, "kld_top_k": 16, "prefill_tokens": 128,
        "decode_tokens": 16, "speed_repeats": 2, "sanity_prompt_ids": [1, 200, 300, 400], "sanity_new_tokens": 6,
        "reference_dir": None, "write_reference": False, "seed": 0, "device": "cuda", "profile_decode": True}
class C:
    def progress(self, m): print(m, flush=True)
one = run_cell(CellJob("fp16", "transformers", dict(spec, parallel={"gpus": 1, "layout": "single"}), "a"), Path("runs/dry/one"), C(), 600, 4)
tp = run_cell(CellJob("fp16", "transformers", dict(spec, parallel={"gpus": 1, "layout": "tensor-parallel"}), "b"), Path("runs/dry/tp"), C(), 600, 4)
print("single:", one.ok, one.error, "tp:", tp.ok, tp.error)
if one.ok and tp.ok:
    d = np.abs(np.array(one.result["window_nll"]) - np.array(tp.result["window_nll"])).max()
    print("max |dNLL| per window", d, "notes", tp.result["notes"], "vram", tp.result.get("peak_vram_bytes"),
          "decode", one.result["speed"]["decode_tok_s"], tp.result["speed"]["decode_tok_s"])
PY
  echo "== 3. compare --gpus 1"
  python3 -m harness.cli compare --synthetic-weights tiny-qwen3 --tokenizer $DEV/tokenizer --device cuda --gpus 1 \
    --variants fp16 --runtimes transformers,transformers-compiled --windows 1 --n-ctx 256 --prefill-tokens 64 \
    --decode-tokens 16 --speed-repeats 2 --decode-batches 1,4 --out runs/dry-compare
  echo "exit $?"
  python3 -c "
import json; r = json.load(open('runs/dry-compare/results.json'))
print([(c['variant'], c['runtime'], c['status'], c.get('parallel'), c.get('peak_vram_bytes')) for c in r['cells']])
print('topology:', r['environment'].get('gpu_topology'))"
  date
} 2>&1 | tee "$OUT/dry-run.log" | grep -v "Warning\|warn(" | tail -60
