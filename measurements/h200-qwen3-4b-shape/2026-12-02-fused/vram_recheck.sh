#!/bin/bash
# Runs ON the GPU host (device tool, carry [".device"]): fp16 on the fused transformers-compiled runtime alone,
# after the fix that gives the unfused weights' memory back while fusing (the main job's fp16 row held
# 12.85 GB at peak against 9.26 GB before fusion). Writes $OUT/vram-results.json.
set -x -o pipefail
ROOT=$PWD DEV=/tmp/qc-device
. measurements/gpu-jobs/payload_setup.sh
setup > /dev/null 2>&1
export PYTHONPATH=/tmp/site:$DEV/llama.cpp/gguf-py:$ROOT QC_CACHE_DIR=$ROOT/runs/.qc-cache QC_STORE_DIR=$ROOT/runs/.qc-store
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 QC_VENVS_DIR=/tmp/venvs
python3 -m harness.cli compare --synthetic-weights qwen3-4b --tokenizer "$DEV"/tokenizer --device cuda --windows 1 \
  --speed-repeats 5 --out runs/vram --variants fp16 --runtimes transformers-compiled --decode-batches 1,8 \
  --compiled-attention matmul --note "issue 23: the VRAM re-check after giving the unfused weights' memory back" 2>&1 | grep -v "it/s]"
sed -e "s#$ROOT/##g" runs/vram/results.json > "$OUT/vram-results.json"
