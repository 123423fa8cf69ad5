#!/usr/bin/env bash
# The cold default run (issue 36): `make compare` (the quick profile on a CPU) from nothing, its store and the
# converted default model removed first, installs already made. Archives results.json.gz, run.log and report.html
# here, with the machine's paths scrubbed. Run it alone on the machine: the stage table is its timing.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=measurements/cpu-smollm2-quick
work=$(mktemp -d)
store=${QC_STORE_DIR:-$HOME/.cache/quantcompare/store}
rm -rf "$store" "$HOME/.cache/quantcompare/models"
make setup >/dev/null
/usr/bin/time -v make compare OUT="$work/default" 2>&1 | tee "$work/time.log" | tail -60
cp "$work/default/run.log" "$work/default/report.html" "$here/"
gzip -9 -c "$work/default/results.json" > "$here/results.json.gz"
grep -E "Elapsed|Maximum resident|Percent of CPU" "$work/time.log" > "$here/time.txt"
bash measurements/scrub-paths.sh "$work" "$here/run.log" "$here/report.html" "$here/results.json.gz"
