#!/bin/sh
# Runs `mammo bench` and the PyTorch anchor (bench/torch_ref.py) side by side on this machine's
# GPU, for ResNet50 and VGG16 whole-image training at each precision, and prints the ratios:
#
#   compare net=resnet50 precision=bf16 speed_ratio=1.31 mem_ratio=0.42
#
# speed_ratio = mammo images/s / torch images/s (target >= 1.2);
# mem_ratio   = mammo peak bytes / torch peak allocated bytes (target <= 0.5).
# Every raw line and the ratios are also written to bench/results/<date>-<card>.txt.
#
# Usage: sh bench/gpu_compare.sh [build-dir] [steps]
#   env: NETS="resnet50 vgg16" PRECISIONS="fp32 tf32 bf16" INPUT=1152x896 BATCH=2 WARMUP=5
#        PYTHON=python3 MAMMO_FLAGS="--cuda-graph" (extra flags of mammo bench)
#        APPEND=1 (add to the day's results file instead of starting it anew: one net per call)
#        LOGDIR=dir (keep each mammo run's whole output there as mammo-<net>-<precision>.log;
#        with MM_CUDNN_VERBOSE=1 it holds every convolution search)
#        EVAL=1 (evaluation forward passes: mammo bench --eval beside torch_ref.py --eval)
#        WINDOWS=3 (PyTorch's timed windows of `steps` steps; its best window's rate is taken)
set -u
build=${1:-build}
steps=${2:-20}
nets=${NETS:-"resnet50 vgg16"}
precisions=${PRECISIONS:-"fp32 tf32 bf16"}
input=${INPUT:-1152x896}
batch=${BATCH:-2}
warmup=${WARMUP:-5}
windows=${WINDOWS:-3}
python=${PYTHON:-python3}
mammo_flags=${MAMMO_FLAGS-"--cuda-graph"}
eval_flag=
[ "${EVAL:-0}" = 1 ] && eval_flag=--eval
here=$(cd "$(dirname "$0")" && pwd)
me=gpu_compare.sh
. "$here/gpu_common.sh"
out="$results.txt"
[ "${APPEND:-0}" = 1 ] || : >"$out"
run="input=$input batch=$batch steps=$steps warmup=$warmup windows=$windows"
say "# $(date -u +%Y-%m-%dT%H:%M:%SZ) card=\"$card\" $run"
say "# mammo $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"

status=0
for net in $nets; do
    top=$(top_of "$net") || exit 1
    for p in $precisions; do
        log=/dev/null
        [ -n "${LOGDIR:-}" ] && log="$LOGDIR/mammo-$net-$p.log"
        m=$("$mammo" bench --net "$net" --top "$top" --input "$input" --batch "$batch" \
            --device cuda --precision "$p" --steps "$steps" $mammo_flags $eval_flag 2>&1 |
            tee "$log" |
            grep '^mammo ' | tail -n 1)
        t=$("$python" "$here/torch_ref.py" --net "$net" --top "$top" --input "$input" \
            --batch "$batch" --precision "$p" --steps "$steps" --warmup "$warmup" \
            --windows "$windows" $eval_flag 2>&1 |
            grep '^torch ' | tail -n 1)
        say "${m:-mammo net=$net precision=$p FAILED}"
        say "${t:-torch net=$net precision=$p FAILED}"
        mi=$(field "$m" images_per_s); ti=$(field "$t" images_per_s)
        mb=$(field "$m" peak_mem_bytes); tb=$(field "$t" peak_mem_bytes)
        if [ -n "$mi" ] && [ -n "$ti" ] && [ -n "$mb" ] && [ -n "$tb" ]; then
            say "$(awk -v n="$net" -v p="$p" -v mi="$mi" -v ti="$ti" -v mb="$mb" -v tb="$tb" \
                'BEGIN { printf "compare net=%s precision=%s speed_ratio=%.3f mem_ratio=%.3f", n, p, mi / ti, mb / tb }')${eval_flag:+ mode=eval}"
        else
            say "compare net=$net precision=$p FAILED (a run printed no result)"
            status=1
        fi
    done
done
echo "results: $out"
exit $status
