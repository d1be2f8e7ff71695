#!/bin/sh
# Builds every tests/fuzz/fuzz_*.c (and .cpp) as a libFuzzer target with clang, AddressSanitizer and
# UBSan, and runs each for SECONDS (default 60). Usage: sh tests/fuzz/run.sh [SECONDS] [NAME...]
# (NAME: e.g. "npy" or "fuzz_npy" to run only some targets).
#
# For target fuzz_<x>: seeds are read from tests/fuzz/corpus/<x>/ when it exists, a dictionary from
# tests/fuzz/<x>.dict; the growing corpus lives in $BUILD/corpus/<x>/ and crashing inputs are saved
# as $BUILD/artifacts/<x>/crash-* (rerun one with: $BUILD/fuzz_<x> <file>).
# Needs clang, libclang-rt-dev (libFuzzer) and libomp-dev: `make fuzz` installs them.
# Exit status 1 if any target crashed or failed to build.
set -u
seconds=${1:-60}
[ $# -gt 0 ] && shift
names="$*" # targets to run; all when empty
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${MM_FUZZ_BUILD:-$root/build-fuzz}
jobs=${MM_FUZZ_JOBS:-2}

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMM_CUDA=OFF \
    -DMM_SANITIZE=ON -DMM_FUZZ=ON >"$build.configure.log" 2>&1 || {
    cat "$build.configure.log"
    echo "fuzz: cmake failed (is clang installed? run 'make fuzz')"
    exit 1
}

wanted() { # is target $1 among the names given on the command line (all when none)?
    [ -z "$names" ] && return 0
    for n in $names; do
        if [ "$n" = "$1" ] || [ "fuzz_$n" = "$1" ]; then return 0; fi
    done
    return 1
}

failed=0
ran=0
for src in "$root"/tests/fuzz/fuzz_*.c "$root"/tests/fuzz/fuzz_*.cpp; do
    [ -f "$src" ] || continue
    name=$(basename "$src")
    name=${name%.*}
    wanted "$name" || continue
    short=${name#fuzz_}
    if ! cmake --build "$build" -j "$jobs" --target "$name" >"$build/$name.build.log" 2>&1; then
        cat "$build/$name.build.log"
        echo "fuzz: $name: build FAILED"
        failed=1
        continue
    fi
    corpus="$build/corpus/$short"
    artifacts="$build/artifacts/$short"
    mkdir -p "$corpus" "$artifacts"
    set -- "-max_total_time=$seconds" "-timeout=20" "-rss_limit_mb=4096" "-print_final_stats=1" \
        "-artifact_prefix=$artifacts/"
    [ -f "$root/tests/fuzz/$short.dict" ] && set -- "$@" "-dict=$root/tests/fuzz/$short.dict"
    set -- "$@" "$corpus"
    [ -d "$root/tests/fuzz/corpus/$short" ] && set -- "$@" "$root/tests/fuzz/corpus/$short"
    log="$build/$name.log"
    echo "fuzz: $name for ${seconds}s (log: $log)"
    if TMPDIR="$build" "$build/$name" "$@" >"$log" 2>&1; then
        runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
        echo "fuzz: $name: ok, ${runs:-?} inputs, corpus $(ls "$corpus" | wc -l) files"
    else
        grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -20
        echo "fuzz: $name: FAILED (see $log; inputs in $artifacts/)"
        failed=1
    fi
    ran=$((ran + 1))
done
[ $ran -gt 0 ] || { echo "fuzz: no targets ran"; exit 1; }
exit $failed
