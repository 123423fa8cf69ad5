#!/usr/bin/env bash
# Local vs Ray on one 2-core machine: the default model's sensitivity sweep, a two-model comparison (timings, run
# alone), then the full default comparison on both executors (same rows?).
# Each side starts from an empty store (the default model's conversion to fp16 is shared: it is not in the store).
# Ray: one node with this machine's 2 CPUs; each task takes --threads 1 so two run at once. Local: --threads 2.
# PAIRS="sens two" runs only the timing pairs.
set -euo pipefail
cd "$(dirname "$0")/../.."
M=measurements/ray-cpu; W=${WORK:-/tmp/ray-measure}
mkdir -p "$W"; rm -rf "$W"/store-* "$W"/runs
QC=.venv/bin/quantcompare
SRC=$(ls -d ~/.cache/quantcompare/models/smollm2-135m-instruct-fp16)
.venv/bin/python $M/make_finetune.py "$SRC" "$W/smollm2-135m-nudged" >/dev/null
.venv/bin/ray stop --force >/dev/null 2>&1 || true
.venv/bin/ray start --head --num-cpus 2 --include-dashboard=false --disable-usage-stats >/dev/null
trap '.venv/bin/ray stop --force >/dev/null 2>&1 || true' EXIT
t() { local name=$1; shift; local t0=$(date +%s.%N) rc=0; "$@" > "$W/$name.log" 2>&1 || rc=$?
      printf '%s %.1f %s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rc" | tee -a "$W/times.txt"; }
: > "$W/times.txt"
TWO=(--model "$SRC" --model "$W/smollm2-135m-nudged" --variants fp16,gguf-f16,gguf-q4_k_m --tasks none --windows 16 --gen-prompts 8
     --long-ctx 0 --instructions 0)
PAIRS=${PAIRS:-sens two default}
if [[ " $PAIRS " == *" sens "* ]]; then
QC_STORE_DIR=$W/store-sens-local t sens-local $QC sensitivity --out "$W/runs/sens-local" --threads 2
QC_STORE_DIR=$W/store-sens-ray t sens-ray $QC sensitivity --out "$W/runs/sens-ray" --threads 1 --executor ray --ray-address auto
fi
if [[ " $PAIRS " == *" two "* ]]; then
QC_STORE_DIR=$W/store-two-local t two-local $QC compare "${TWO[@]}" --out "$W/runs/two-local" --threads 2
QC_STORE_DIR=$W/store-two-ray t two-ray $QC compare "${TWO[@]}" --out "$W/runs/two-ray" --threads 1 --executor ray --ray-address auto
fi
if [[ " $PAIRS " == *" default "* ]]; then
QC_STORE_DIR=$W/store-default-local t default-local make compare OUT="$W/runs/default-local"
QC_STORE_DIR=$W/store-default-ray t default-ray make compare OUT="$W/runs/default-ray" ARGS="--executor ray"
fi
if [[ " $PAIRS " == *" sens "* && " $PAIRS " == *" two "* ]]; then  # archive the timing pairs (timings/compare.py)
  T=$M/timings; mkdir -p $T; grep -v '^default' "$W/times.txt" > $T/times.txt
  for s in local ray; do
    cp "$W/runs/sens-$s/sensitivity.json" $T/sensitivity-$s.json; cp "$W/sens-$s.log" "$W/two-$s.log" $T/
    for m in "$(basename "$SRC")" smollm2-135m-nudged; do gzip -9c "$W/runs/two-$s/$m/results.json" > $T/two-$s-$m.results.json.gz; done
  done
  bash measurements/scrub-paths.sh "$W" $T/*.log $T/*.json $T/*.gz
fi
cat "$W/times.txt"
