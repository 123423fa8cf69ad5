#!/bin/bash
# Runs ON the offline GPU host, from the repository root, with the payload made by
# prepare_payload.sh carried in .device/ (device tool: carry [".device"]).
#
#   run_on_device.sh start        start the whole job in its own session (it outlives the call)
#   run_on_device.sh poll [secs]  wait up to secs (default 540) for the job, copy what exists to $OUT
#
# The job: (1, in parallel) llama.cpp — the source llama-cpp-python 0.3.36 vendors — built with CUDA
# as shared libraries, while `quantcompare compare --build-only` makes the synthetic Qwen3-4B-shape
# source, gguf-f16 and awq-int4 (AutoAWQ on the GPU); (2) the whole comparison on the GPU, llama.cpp
# through that build. Everything it writes is under runs/ (git-ignored: the device tool's sync of the
# working tree deletes untracked paths that are not ignored, a build folder included).
#
# Lessons of the first attempt (2026-11-26): the machine goes back 30 s after a call ends, so a poll
# must follow at once, every call must copy what exists to $OUT, and a call that finds no job (a
# fresh machine) must stop at once instead of waiting.
set -u
ROOT=$PWD
RUN=runs/h100-qwen3-4b-shape
LOG=$ROOT/runs/device.log
DEV=/tmp/qc-device

. "$(dirname "${BASH_SOURCE[0]}")/../gpu-jobs/payload_setup.sh"  # setup(): the payload installed on the host (shared since the H200 run, which added the AutoAWQ stamp)

build_llama_cuda() {
  [ -f runs/cuda-build/bin/libllama.so ] && return 0  # built by an earlier job on this machine
  cmake -S "$DEV"/llama.cpp -B runs/cuda-build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA_FA=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > runs/cuda-cmake.log 2>&1 &&
  cmake --build runs/cuda-build -j "$(nproc)" --target llama > runs/cuda-build.log 2>&1
}

job() {
  set -x
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  setup
  export PYTHONPATH=/tmp/site:$DEV/llama.cpp/gguf-py:$ROOT
  export QC_VENVS_DIR=/tmp/venvs QC_LLAMA_CPP_SRC=$DEV/llama.cpp QC_CACHE_DIR=$ROOT/runs/.qc-cache
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  COMMON=(--synthetic-weights qwen3-4b --tokenizer "$DEV"/tokenizer --device cuda --out "$RUN" --windows 1)
  build_llama_cuda & BUILD=$!
  python3 -m harness.cli compare "${COMMON[@]}" --variants fp16,gguf-f16,awq-int4 --build-only
  wait $BUILD || { echo "CUDA build failed"; tail -30 runs/cuda-build.log; echo "EXIT 9"; exit 1; }
  date
  LIBDIR=$(dirname "$(find runs/cuda-build -name 'libllama.so' | head -1)")
  export LLAMA_CPP_LIB_PATH=$ROOT/$LIBDIR
  python3 -m harness.cli compare "${COMMON[@]}" --runtimes transformers,llama.cpp,autoawq \
    --kernel-check-tokens 256 --decode-batches 1,8 --speed-repeats 5 \
    --note "vLLM was not run on this host: its wheel (over 300 MB) and its own torch pin cannot be carried to the offline GPU machine, so the AWQ checkpoint runs through AutoAWQ's kernels instead."
  echo "EXIT $?"
  date
}

collect() {
  # copies for the repository: paths under the working tree are made relative (no host's absolute paths)
  [ -n "${OUT:-}" ] || return 0
  rel() { sed -e "s#$ROOT/##g" -e "s#$ROOT#.#g" "$1" > "$2"; }
  for f in "$RUN/results.json" "$RUN/results.csv" "$RUN/report.html" "$LOG"; do
    [ -f "$f" ] && rel "$f" "$OUT/$(basename "$f")"
  done
  rm -rf /tmp/qc-logs && mkdir -p /tmp/qc-logs
  (cd "$RUN" 2>/dev/null && for f in cells/*.log cells/*.spec.json artifacts/*/manifest.json; do
     [ -f "$f" ] && mkdir -p "/tmp/qc-logs/$(dirname "$f")" && rel "$f" "/tmp/qc-logs/$f"
   done)
  (cd /tmp/qc-logs && tar czf "$OUT/cells-logs.tgz" cells artifacts 2>/dev/null)
}

case "${1:-start}" in
  start)
    mkdir -p runs
    setsid nohup bash -c "$(declare -f setup build_llama_cuda job); ROOT=$ROOT RUN=$RUN DEV=$DEV job" > "$LOG" 2>&1 < /dev/null &
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
