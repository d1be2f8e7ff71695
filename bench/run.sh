#!/bin/sh
# Runs every benchmark executable of a build folder (build/bench_* by default), one after
# another, each under a header line; extra arguments go to every benchmark.
# Exit status 1 if any benchmark failed.
build=${1:-build}
[ $# -gt 0 ] && shift
found=0 failed=0
for exe in "$build"/bench_*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    found=1
    echo "==== $(basename "$exe") ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n))"
    if ! "$exe" "$@"; then
        echo "==== $(basename "$exe") FAILED"
        failed=1
    fi
    echo
done
if [ $found -eq 0 ]; then
    echo "bench/run.sh: no benchmarks in $build (build them: cmake --build $build)" >&2
    exit 1
fi
exit $failed
