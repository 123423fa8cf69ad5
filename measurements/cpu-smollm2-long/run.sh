#!/usr/bin/env bash
# The long-context measurements on the default model, this 2-core machine alone (issue 30):
#  1. the default comparison from an empty store (cold): its stage table gives the long windows' share and the
#     run's cold time, against the same command on the commit before them (measurements/ray-cpu: default-local);
#  2. the ladder fp16, gguf-f16, gguf-q8_0, gguf-q4_k_m, gguf-q2_k, awq-int4 in the same store (only the new
#     variants are built and scored).
set -euo pipefail
cd "$(dirname "$0")/../.."
M=measurements/cpu-smollm2-long; W=${WORK:-/tmp/long-measure}
mkdir -p "$W"; rm -rf "$W"/store "$W"/runs
export QC_STORE_DIR=$W/store
t() { local name=$1; shift; local t0=$(date +%s.%N) rc=0; "$@" > "$W/$name.log" 2>&1 || rc=$?
      printf '%s %.1f %s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rc" | tee -a "$W/times.txt"; }
: > "$W/times.txt"
t default make compare OUT="$W/runs/default"
t ladder make compare OUT="$W/runs/ladder" ARGS="--variants fp16,gguf-f16,gguf-q8_0,gguf-q4_k_m,gguf-q2_k,awq-int4"
for r in default ladder; do
  mkdir -p $M/$r; cp "$W/runs/$r/results.json" "$W/runs/$r/report.html" "$W/runs/$r/run.log" $M/$r/
  gzip -9f $M/$r/results.json
done
bash measurements/scrub-paths.sh "$W" $M/*/run.log $M/*/results.json.gz
cat "$W/times.txt"
