#!/usr/bin/env bash
# Archived logs and results name no path of the machine that made them: the run's work folder becomes $WORK and
# the home folder ~. Usage: scrub-paths.sh WORK FILE... (text files, or .gz files holding text)
set -euo pipefail
work=$1; shift
for f in "$@"; do
  if [[ $f == *.gz ]]; then
    gunzip -c "$f" | sed -e "s#$work#\$WORK#g" -e "s#$HOME/#~/#g" | gzip -9 > "$f.tmp" && mv "$f.tmp" "$f"
  else
    sed -i -e "s#$work#\$WORK#g" -e "s#$HOME/#~/#g" "$f"
  fi
done
