#!/bin/bash
# Runs ON the offline GPU host, from the repository root, with the payload made by prepare_payload.sh
# carried in .device/ (device tool: carry [".device"]).
#
#   run_on_device.sh start        start the whole job in its own session (it outlives the call)
#   run_on_device.sh poll [secs]  wait up to secs (default 540) for the job, copy what exists to $OUT
#
# The job (issue 14): (1, in parallel) llama.cpp — the source llama-cpp-python 0.3.36 vendors — built with
# CUDA as shared libraries with the release build's defaults (FlashAttention kernels and CUDA graphs on;
# sm_90 only), while `quantcompare compare --build-only` makes the synthetic Qwen3-4B-shape source,
# gguf-f16 and awq-int4 (AutoAWQ on the GPU) and int4_kernels.py times the INT4 kernel candidates; (2) the
# comparison on the GPU: transformers eager, transformers-compiled (static cache + torch.compile, AWQ through
# torch's INT4 kernel) and llama.cpp with flash attention. Everything it writes is under runs/ (git-ignored:
# the device tool's sync keeps ignored paths). A call that finds no job (a fresh machine) stops at once.
set -u
ROOT=$PWD
HERE=measurements/h200-qwen3-4b-shape
RUN=runs/h200-qwen3-4b-shape
LOG=$ROOT/runs/device.log
DEV=/tmp/qc-device
LLAMA_FLAGS="-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release"

. "$(dirname "${BASH_SOURCE[0]}")/../gpu-jobs/payload_setup.sh"  # setup(): the payload installed on the host

build_llama_cuda() {
  [ -f runs/cuda-build/bin/libllama.so ] && return 0  # built by an earlier job on this machine
  # shellcheck disable=SC2086
  cmake -S "$DEV"/llama.cpp -B runs/cuda-build $LLAMA_FLAGS -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > runs/cuda-cmake.log 2>&1 &&
  cmake --build runs/cuda-build -j "$(nproc)" --target llama > runs/cuda-build.log 2>&1
  local rc=$?
  grep -E "GGML_CUDA_(FA|GRAPHS)|CUDA_ARCH" runs/cuda-build/CMakeCache.txt
  date
  return $rc
}

job() {
  set -x
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  python3 -c 'import torch, transformers, triton; print(torch.__version__, transformers.__version__, triton.__version__)'
  setup
  export PYTHONPATH=/tmp/site:$DEV/llama.cpp/gguf-py:$ROOT
  export QC_VENVS_DIR=/tmp/venvs QC_LLAMA_CPP_SRC=$DEV/llama.cpp QC_CACHE_DIR=$ROOT/runs/.qc-cache
  export QC_STORE_DIR=$ROOT/runs/.qc-store HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  export QC_LLAMA_BUILD_FLAGS="$LLAMA_FLAGS (GGML_CUDA_FA and GGML_CUDA_GRAPHS at llama.cpp's defaults: ON)"
  COMMON=(--synthetic-weights qwen3-4b --tokenizer "$DEV"/tokenizer --device cuda --out "$RUN" --windows 1)
  build_llama_cuda & BUILD=$!
  python3 -m harness.cli compare "${COMMON[@]}" --variants fp16,gguf-f16,gguf-q4_k_m,awq-int4 --build-only
  date
  # the INT4 kernel candidates (GPU-timed inside CUDA graphs: the build on the CPUs does not move them)
  python3 $HERE/int4_kernels.py runs/int4_kernels.json /tmp/awqsite/awq/modules/triton/gemm.py
  date
  wait $BUILD || { echo "CUDA build failed"; tail -30 runs/cuda-build.log; echo "EXIT 9"; exit 1; }
  LIBDIR=$(dirname "$(find runs/cuda-build -name 'libllama.so' | head -1)")
  export LLAMA_CPP_LIB_PATH=$ROOT/$LIBDIR
  python3 -m harness.cli compare "${COMMON[@]}" --runtimes transformers,transformers-compiled,llama.cpp \
    --llama-flash-attn on --kernel-check-tokens 256 --decode-batches 1,8 --speed-repeats 5 \
    --note "vLLM was not run on this host: its wheel (over 300 MB) and its own torch pin cannot be carried to the offline GPU machine." \
    --note "AutoAWQ's own runtime (its Triton GEMM in eager transformers 4.51) was not run again on this card to save device time; its kernel is timed in int4_kernels.json, and the H100 run measured its decode at 0.66x fp16 eager."
  echo "EXIT $?"
  date
}

collect() {
  # copies for the repository: paths under the working tree are made relative (no host's absolute paths)
  [ -n "${OUT:-}" ] || return 0
  rel() { sed -e "s#$ROOT/##g" -e "s#$ROOT#.#g" "$1" > "$2"; }
  for f in "$RUN/results.json" "$RUN/results.csv" "$RUN/report.html" "$LOG" runs/int4_kernels.json; do
    [ -f "$f" ] && rel "$f" "$OUT/$(basename "$f")"
  done
  rm -rf /tmp/qc-logs && mkdir -p /tmp/qc-logs
  (cd "$RUN" 2>/dev/null && for f in cells/*.log cells/*.json artifacts/*/manifest.json; do
     [ -f "$f" ] && mkdir -p "/tmp/qc-logs/$(dirname "$f")" && rel "$f" "/tmp/qc-logs/$f"
   done)
  cp runs/cuda-cmake.log runs/cuda-build.log /tmp/qc-logs/ 2>/dev/null
  (cd /tmp/qc-logs && tar czf "$OUT/cells-logs.tgz" . 2>/dev/null)
}

case "${1:-start}" in
  start)
    mkdir -p runs
    setsid nohup bash -c "$(declare -f setup build_llama_cuda job); ROOT=$ROOT RUN=$RUN DEV=$DEV HERE=$HERE LLAMA_FLAGS='$LLAMA_FLAGS' job" > "$LOG" 2>&1 < /dev/null &
    echo "started; log: $LOG"
    ;;
  poll)
    [ -f "$LOG" ] || { echo "no job on this machine (a fresh one?): start again"; exit 3; }
    limit=${2:-540}
    for _ in $(seq 1 $((limit / 10))); do grep -q '^EXIT ' "$LOG" && break; sleep 10; done
    collect
    tail -45 "$LOG" | cut -c1-300
    grep -q '^EXIT ' "$LOG" && echo "JOB DONE" || echo "JOB RUNNING"
    ;;
esac
