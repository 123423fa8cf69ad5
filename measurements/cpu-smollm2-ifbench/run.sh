#!/bin/bash
# The default run with IFBench's instruction prompts and five long windows per length (issue 37's "after"):
# the quick profile otherwise. From the repository root: bash measurements/cpu-smollm2-ifbench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
make setup
.venv/bin/quantcompare compare --instructions 64 --long-windows 5 --out runs/cpu-smollm2-ifbench "$@" || test $? -eq 1
