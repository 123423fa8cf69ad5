#!/bin/bash
# Runs ON the offline GPU host, from the repository root, with the payload made by
# prepare_payload.sh carried in .device/. Starts the whole job in the background (its own
# session, so it outlives the calling command) and returns; progress goes to runs/device.log.
#   stage 1, in parallel: llama.cpp (the source llama-cpp-python 0.3.36 vendors) built with CUDA
#            as shared libraries; the synthetic Qwen3-4B-shape source, gguf-f16 and awq-int4
#            (AutoAWQ on the GPU) built by `quantcompare compare --build-only`
#   stage 2: the full comparison on the GPU, llama.cpp through the CUDA build
set -u
ROOT=$PWD
RUN=runs/h100-qwen3-4b-shape
mkdir -p runs
LOG=$ROOT/runs/device.log

setup() {
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl-main/*.whl
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/awqsite .device/whl-awq/*.whl
  cp -r .device/site/llama_cpp .device/site/llama_cpp_python-*.dist-info /tmp/site/
  # AutoAWQ imports `datasets` at module level only to load calibration sets by name; ours is a list of ids
  mkdir -p /tmp/awqsite/datasets
  printf 'def load_dataset(*a, **k):\n    raise RuntimeError("datasets is not installed on this offline host")\n' \
    > /tmp/awqsite/datasets/__init__.py
  # the AutoAWQ "environment": the host's torch + AutoAWQ 0.2.9 with transformers 4.51.3 in front
  mkdir -p /tmp/venvs/autoawq/bin
  printf '#!/bin/sh\nPYTHONPATH=/tmp/awqsite:%s:%s/.device/llama.cpp/gguf-py exec python3 "$@"\n' "$ROOT" "$ROOT" \
    > /tmp/venvs/autoawq/bin/python
  chmod +x /tmp/venvs/autoawq/bin/python
}

build_llama_cuda() {
  cmake -S .device/llama.cpp -B .cuda-build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA_FA=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > runs/cuda-cmake.log 2>&1 &&
  cmake --build .cuda-build -j "$(nproc)" --target llama > runs/cuda-build.log 2>&1
}

main() {
  set -x
  date
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  setup
  export PYTHONPATH=/tmp/site:$ROOT/.device/llama.cpp/gguf-py:$ROOT
  export QC_VENVS_DIR=/tmp/venvs QC_LLAMA_CPP_SRC=$ROOT/.device/llama.cpp QC_CACHE_DIR=$ROOT/runs/.qc-cache
  export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  COMMON=(--synthetic-weights qwen3-4b --tokenizer .device/tokenizer --device cuda --out "$RUN" --windows 1)
  build_llama_cuda & BUILD=$!
  python3 -m harness.cli compare "${COMMON[@]}" --variants fp16,gguf-f16,awq-int4 --build-only
  wait $BUILD || { echo "CUDA build failed"; tail -30 runs/cuda-build.log; exit 1; }
  date
  LIBDIR=$(dirname "$(find .cuda-build -name 'libllama.so' | head -1)")
  ls -la "$LIBDIR"/*.so*
  export LLAMA_CPP_LIB_PATH=$ROOT/$LIBDIR
  python3 -m harness.cli compare "${COMMON[@]}" --runtimes transformers,llama.cpp,autoawq \
    --kernel-check-tokens 256 --decode-batches 1,8 --speed-repeats 3 \
    --note "vLLM was not run on this host: its wheel (over 300 MB) and its own torch pin cannot be carried to the offline GPU machine, so the AWQ checkpoint runs through AutoAWQ's kernels instead."
  echo "EXIT $?"
  date
}

setsid nohup bash -c "$(declare -f setup build_llama_cuda main); ROOT=$ROOT RUN=$RUN main" > "$LOG" 2>&1 < /dev/null &
echo "started; log: $LOG"
