#!/bin/sh
# Runs every test executable through ctest and ends with one line summing their results:
# "N passed, N failed, N skipped". Exit status 1 if any test failed or an executable crashed.
build=${1:-build}
log="$build/test-log.txt"
mkdir -p "$build/test-tmp"
# Tests run two at a time: OpenMP threads spin only briefly before they sleep (see tools/main.c).
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-20000}
ctest --test-dir "$build" -V --timeout 1500 -j 2 >"$log" 2>&1
status=$?
cat "$log"
# Each executable prints its own "N passed, N failed, N skipped" line; sum them.
summary=$(sed -E 's/^[0-9]+: //' "$log" | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' |
    awk '{p+=$1; f+=$3; s+=$5} END {printf "%d %d %d", p, f, s}')
set -- $summary
passed=${1:-0} failed=${2:-0} skipped=${3:-0}
# An executable that crashed prints no summary line: ctest's status catches it; count it failed.
if [ $status -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed, $skipped skipped" | tee "$build/test-summary.txt"
[ "$failed" -eq 0 ]
