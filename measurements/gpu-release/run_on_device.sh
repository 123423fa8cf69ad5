#!/bin/bash
# The release run on one GPU (issue 36, part 2): every default measure at the release profile's counts, for
# fp16, gguf-f16, gguf-q4_k_m and awq-int4 on transformers, transformers-compiled and llama.cpp built with CUDA,
# on a synthetic model of a real shape (SHAPE: qwen3-4b or llama-8b; the weights cannot be carried).
# Runs ON the offline GPU host, from the repository root, with the payload of prepare_payload.sh carried
# (device tool: carry [".device-pack"]).
#
#   SHAPE=qwen3-4b run_on_device.sh start        start the job in its own session (it outlives the call)
#   SHAPE=qwen3-4b run_on_device.sh poll [secs]  wait up to secs (default 540), copy what exists to $OUT
#
# The machine goes back 30 s after a call ends: poll at once after start, and every poll copies what exists.
set -u
ROOT=$PWD
SHAPE=${SHAPE:-qwen3-4b}
DEVICE=${DEVICE:-cuda}  # cpu: a rehearsal of the job here (tiny-qwen3, LLAMA_LIB_DIR = a CPU build's libraries)
RUN=runs/gpu-release-$SHAPE
LOG=$ROOT/runs/device-$SHAPE.log
DEV=/tmp/qc-device

. "$(dirname "${BASH_SOURCE[0]}")/../gpu-jobs/payload_setup.sh"  # setup(): the payload installed on the host

build_llama_cuda() {
  [ -f runs/cuda-build/bin/libllama.so ] && return 0  # built by an earlier job on this machine
  # the release build's defaults (FlashAttention kernels, CUDA graphs), sm_90 only; the library alone
  cmake -S "$DEV"/llama.cpp -B runs/cuda-build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > runs/cuda-cmake.log 2>&1 &&
  cmake --build runs/cuda-build -j "$(nproc)" --target llama > runs/cuda-build.log 2>&1
}

# the command's peak host memory: the largest resident set of any process it started (RUSAGE_CHILDREN)
peak() {
  python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("PEAK_HOST_RSS_MB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, flush=True)
sys.exit(rc)' "$@"
}

job() {
  set -x
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  setup
  export PYTHONPATH=/tmp/site:$DEV/llama.cpp/gguf-py:$ROOT
  export QC_VENVS_DIR=/tmp/venvs QC_LLAMA_CPP_SRC=$DEV/llama.cpp QC_CACHE_DIR=$ROOT/runs/.qc-cache
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  COMMON=(--synthetic-weights "$SHAPE" --tokenizer "$DEV"/tokenizer --device "$DEVICE" --profile release --out "$RUN"
          --task-requests "$DEV"/task-requests.json ${EXTRA:-})
  T0=$(date +%s)
  if [ "$DEVICE" = cpu ]; then true & else build_llama_cuda & fi; BUILD=$!
  peak python3 -m harness.cli compare "${COMMON[@]}" --variants fp16,gguf-f16,awq-int4 --build-only
  wait $BUILD || { echo "CUDA build failed"; tail -30 runs/cuda-build.log; echo "EXIT 9"; exit 1; }
  echo "BUILDS_AND_CUDA_LIBRARY_S $(( $(date +%s) - T0 ))"
  date -u
  LIBDIR=${LLAMA_LIB_DIR:-$ROOT/$(dirname "$(find runs/cuda-build -name 'libllama.so' | head -1)")}
  export LLAMA_CPP_LIB_PATH=$LIBDIR
  peak python3 -m harness.cli compare "${COMMON[@]}" --runtimes transformers,transformers-compiled,llama.cpp \
    --kernel-check-tokens 256 \
    --note "Release profile on a synthetic $SHAPE model: every measure ran and is timed; quality is not measured on random weights. The lm-eval tasks' requests were built where lm-eval is installed (the GPU host has none) and their cells timed unscored."
  rc=$?
  echo "ALL_IN_S $(( $(date +%s) - T0 ))"
  du -sb runs/.qc-cache "$RUN" runs/cuda-build | sed 's/^/DISK_BYTES /'
  echo "EXIT $rc"
  date -u
}

collect() {
  # copies for the repository: paths under the working tree are made relative (no host's absolute paths)
  [ -n "${OUT:-}" ] || return 0
  rel() { sed -e "s#$ROOT/##g" -e "s#$ROOT#.#g" "$1" > "$2"; }
  [ -f "$RUN/results.json" ] && rel "$RUN/results.json" "$OUT/results.json" && gzip -f "$OUT/results.json"
  for f in "$RUN/results.csv" "$RUN/report.html" "$LOG"; do
    [ -f "$f" ] && rel "$f" "$OUT/$(basename "$f")"
  done
  rm -rf /tmp/qc-logs && mkdir -p /tmp/qc-logs
  (cd "$RUN" 2>/dev/null && for f in cells/*.log cells/*.spec.json artifacts/*/manifest.json run.log; do
     [ -f "$f" ] && mkdir -p "/tmp/qc-logs/$(dirname "$f")" && rel "$f" "/tmp/qc-logs/$f"
   done)
  (cd /tmp/qc-logs && tar czf "$OUT/cells-logs.tgz" . 2>/dev/null)
  # what the cells finished so far report of themselves (a lease taken back mid-run still leaves these)
  python3 - "$RUN" > "$OUT/cells-so-far.json" 2>/dev/null <<'PY'
import json, pathlib, sys
out = []
for f in sorted(pathlib.Path(sys.argv[1], "cells").glob("*.json")):
    if f.name.endswith(".spec.json"):
        continue
    try:
        d = json.loads(f.read_text())
    except ValueError:
        continue
    r = d.get("result") or {}
    out.append({"cell": f.stem, "wall_s": d.get("wall_s"), "ok": r.get("ok"), "load_s": r.get("load_s"),
                "gpu_busy": r.get("gpu_busy"), "peak_vram_bytes": r.get("peak_vram_bytes"),
                "peak_rss_bytes": r.get("peak_rss_bytes"), "eval_seconds": r.get("eval_seconds"),
                "generation_s": (r.get("generation") or {}).get("seconds"), "error": r.get("error")})
json.dump(out, sys.stdout, indent=1)
PY
}

case "${1:-start}" in
  start)
    mkdir -p runs
    setsid nohup bash -c "$(declare -f setup build_llama_cuda peak job); ROOT=$ROOT RUN=$RUN DEV=$DEV SHAPE=$SHAPE DEVICE=$DEVICE EXTRA='${EXTRA:-}' LLAMA_LIB_DIR='${LLAMA_LIB_DIR:-}' job" \
      > "$LOG" 2>&1 < /dev/null &
    echo "started; log: $LOG"
    ;;
  poll)
    [ -f "$LOG" ] || { echo "no job on this machine (a fresh one?): start again"; exit 3; }
    limit=${2:-540}
    for _ in $(seq 1 $((limit / 10))); do grep -q '^EXIT ' "$LOG" && break; sleep 10; done
    collect
    grep -v '^+' "$LOG" | tail -45 | cut -c1-300
    grep -q '^EXIT ' "$LOG" && echo "JOB DONE" || echo "JOB RUNNING"
    ;;
esac
