#!/bin/bash
# Runs ON the offline GPU host, from the repository root, with the payload of ../prepare_payload.sh carried in
# .device/ (device tool: carry [".device"]).
#
#   run_on_device.sh start        start the whole job in its own session (it outlives the call)
#   run_on_device.sh poll [secs]  wait up to secs (default 540) for the job, copy what exists to $OUT
#
# The job (issue 23), in order:
#   0. llama.cpp built with CUDA in the background (as in the issue-14 run: the source llama-cpp-python 0.3.36
#      vendors, the release build's defaults, sm_90 only);
#   1. gpu_smoke.py: the fused decoder on this GPU on a small model, fp16 and AWQ (the job stops if it fails);
#   2. decode_kernels.py: the one-token attention kinds and the fused/unfused projections, timed; the
#      fastest attention kind at batch 1 is the comparison's --compiled-attention;
#   3. compare --build-only: the synthetic Qwen3-4B-shape source, gguf-f16, gguf-q4_k_m, awq-int4;
#   4. "after": every variant on transformers (eager), transformers-compiled (the fused decoder) and
#      llama.cpp, batch 1 and 8, kernel checks;
#   5. "before": fp16 and awq-int4 on transformers-compiled with transformers' modules (the issue-14 decoder),
#      batch 1, in the same lease.
set -u
ROOT=$PWD
HERE=measurements/h200-qwen3-4b-shape/2026-12-02-fused
LOG=$ROOT/runs/device.log
DEV=/tmp/qc-device
LLAMA_FLAGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release"

. "$(dirname "${BASH_SOURCE[0]}")/../../gpu-jobs/payload_setup.sh"  # setup(): the payload installed on the host

build_llama_cuda() {
  while pgrep -x cmake > /dev/null; do sleep 5; done  # an earlier job's build
  [ -f runs/cuda-build/bin/libllama.so ] && return 0  # built by an earlier job on this machine
  # shellcheck disable=SC2086
  cmake -S "$DEV"/llama.cpp -B runs/cuda-build $LLAMA_FLAGS -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > runs/cuda-cmake.log 2>&1 &&
  cmake --build runs/cuda-build -j "$(nproc)" --target llama > runs/cuda-build.log 2>&1
  local rc=$?
  echo "CUDA build rc $rc"; date
  return $rc
}

job() {
  set -x -o pipefail
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  python3 -c 'import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)'
  setup
  export PYTHONPATH=/tmp/site:$DEV/llama.cpp/gguf-py:$ROOT
  export QC_VENVS_DIR=/tmp/venvs QC_LLAMA_CPP_SRC=$DEV/llama.cpp QC_CACHE_DIR=$ROOT/runs/.qc-cache
  export QC_STORE_DIR=$ROOT/runs/.qc-store HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  export QC_LLAMA_BUILD_FLAGS="$LLAMA_FLAGS (GGML_CUDA_FA and GGML_CUDA_GRAPHS at llama.cpp's defaults: ON)"
  build_llama_cuda & BUILD=$!
  python3 $HERE/gpu_smoke.py "$DEV"/tokenizer 2>&1 | grep -v "it/s]" || { echo "SMOKE FAILED"; echo "EXIT 8"; exit 1; }
  date
  python3 $HERE/decode_kernels.py runs/decode_kernels.json runs/attention_winner 2>&1 | grep -v "^{"
  ATT=$(cat runs/attention_winner 2>/dev/null || echo sdpa-grouped)
  date
  COMMON=(--synthetic-weights qwen3-4b --tokenizer "$DEV"/tokenizer --device cuda --windows 1 --awq-calib-samples 16
          --speed-repeats 5 --kernel-check-tokens 256)
  python3 -m harness.cli compare "${COMMON[@]}" --out runs/after --variants fp16,gguf-f16,gguf-q4_k_m,awq-int4 --build-only
  date
  wait $BUILD || { echo "CUDA build failed"; tail -30 runs/cuda-build.log; echo "EXIT 9"; exit 1; }
  LIBDIR=$(dirname "$(find runs/cuda-build -name 'libllama.so' | head -1)")
  export LLAMA_CPP_LIB_PATH=$ROOT/$LIBDIR
  python3 -m harness.cli compare "${COMMON[@]}" --out runs/after --runtimes transformers,transformers-compiled,llama.cpp \
    --llama-flash-attn on --decode-batches 1,8 --compiled-attention "$ATT" \
    --note "transformers-compiled: the fused decoder (issue 23), one-token attention '$ATT', the fastest at batch 1 in decode_kernels.json of this lease." \
    --note "vLLM was not run on this host: its wheel (over 300 MB) and its own torch pin cannot be carried to the offline GPU machine."
  echo "AFTER rc $?"
  date
  python3 -m harness.cli compare "${COMMON[@]}" --out runs/before --variants fp16,awq-int4 --runtimes transformers-compiled \
    --compiled-decoder transformers --decode-batches 1 \
    --note "before (issue 23): transformers-compiled with transformers' own modules, StaticCache and mode reduce-overhead, as in the issue-14 run; batch 1 only, to save the lease."
  echo "EXIT $?"
  date
}

collect() {
  # copies for the repository: paths under the working tree are made relative (no host's absolute paths)
  [ -n "${OUT:-}" ] || return 0
  rel() { sed -e "s#$ROOT/##g" -e "s#$ROOT#.#g" "$1" > "$2"; }
  for f in runs/after/results.json runs/after/report.html runs/before/results.json runs/device.log runs/decode_kernels.json; do
    [ -f "$f" ] && rel "$f" "$OUT/$(echo "$f" | sed 's#^runs/##; s#/#-#g')"
  done
  rm -rf /tmp/qc-logs && mkdir -p /tmp/qc-logs
  for run in after before; do
    (cd runs/$run 2>/dev/null && for f in results.csv cells/*.log cells/*.json artifacts/*/manifest.json; do
       [ -f "$f" ] && mkdir -p "/tmp/qc-logs/$run/$(dirname "$f")" && rel "$f" "/tmp/qc-logs/$run/$f"
     done)
  done
  cp runs/cuda-cmake.log runs/cuda-build.log /tmp/qc-logs/ 2>/dev/null
  (cd /tmp/qc-logs && tar czf "$OUT/cells-logs.tgz" . 2>/dev/null)
}

case "${1:-start}" in
  start)
    mkdir -p runs
    setsid nohup bash -c "$(declare -f setup build_llama_cuda job); ROOT=$ROOT DEV=$DEV HERE=$HERE LLAMA_FLAGS='$LLAMA_FLAGS' job" > "$LOG" 2>&1 < /dev/null &
    echo "started; log: $LOG"
    ;;
  poll)
    [ -f "$LOG" ] || { echo "no job on this machine (a fresh one?): start again"; exit 3; }
    limit=${2:-540}
    for _ in $(seq 1 $((limit / 10))); do grep -q '^EXIT ' "$LOG" && break; sleep 10; done
    collect
    tail -40 "$LOG" | cut -c1-400
    grep -q '^EXIT ' "$LOG" && echo "JOB DONE" || echo "JOB RUNNING"
    ;;
esac
