#!/bin/sh
# Data-parallel scaling on this machine's GPUs: `mammo bench --replicas N` and PyTorch's
# DistributedDataParallel (bench/torch_ddp_ref.py under torchrun) side by side, for N = 1, 2, 4,
# ... up to the GPUs visible, each replica with --batch images a step:
#
#   scaling net=resnet50 precision=bf16 replicas=4 speed_ratio=1.31 mem_ratio=0.45 mammo_eff=0.97 torch_eff=0.93
#
# speed_ratio = mammo images/s / torch images/s at N replicas; mem_ratio: the largest replica's
# peak against the largest rank's; *_eff = images/s at N / (N x images/s at 1), each side's own.
# Lines are also written to bench/results/<date>-<card>-x<GPUs>-scaling.txt.
#
# Usage: sh bench/gpu_scaling.sh [build-dir] [steps]
#   env: NETS="resnet50 vgg16" PRECISIONS="bf16" INPUT=1152x896 BATCH=2 WARMUP=5 PYTHON=python3
#        MAMMO_FLAGS="--cuda-graph"
set -u
build=${1:-build}
steps=${2:-20}
nets=${NETS:-"resnet50 vgg16"}
precisions=${PRECISIONS:-"bf16"}
input=${INPUT:-1152x896}
batch=${BATCH:-2}
warmup=${WARMUP:-5}
python=${PYTHON:-python3}
mammo_flags=${MAMMO_FLAGS-"--cuda-graph"}
here=$(cd "$(dirname "$0")" && pwd)
me=gpu_scaling.sh
. "$here/gpu_common.sh"
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
[ -n "${CUDA_VISIBLE_DEVICES:-}" ] &&
    gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c .)
out="$results-x$gpus-scaling.txt"
: >"$out"
say "# $(date -u +%Y-%m-%dT%H:%M:%SZ) card=\"$card\" gpus=$gpus input=$input batch=$batch steps=$steps warmup=$warmup"
say "# mammo $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"

status=0
for net in $nets; do
    top=$(top_of "$net") || exit 1
    for p in $precisions; do
        m1=""; t1=""
        n=1
        while [ "$n" -le "$gpus" ]; do
            m=$("$mammo" bench --net "$net" --top "$top" --input "$input" --batch "$batch" \
                --device cuda --precision "$p" --steps "$steps" --warmup "$warmup" \
                --replicas "$n" $mammo_flags 2>&1 | grep '^mammo ' | tail -n 1)
            t=$("$python" -m torch.distributed.run --standalone --nproc_per_node "$n" \
                "$here/torch_ddp_ref.py" --net "$net" --top "$top" --input "$input" \
                --batch "$batch" --precision "$p" --steps "$steps" --warmup "$warmup" 2>&1 |
                grep '^torch ' | tail -n 1)
            say "${m:-mammo net=$net precision=$p replicas=$n FAILED}"
            say "${t:-torch net=$net precision=$p replicas=$n FAILED}"
            mi=$(field "$m" images_per_s); ti=$(field "$t" images_per_s)
            mb=$(field "$m" peak_mem_bytes); tb=$(field "$t" peak_mem_bytes)
            [ "$n" = 1 ] && { m1=$mi; t1=$ti; }
            if [ -n "$mi" ] && [ -n "$ti" ] && [ -n "$mb" ] && [ -n "$tb" ] &&
                [ -n "$m1" ] && [ -n "$t1" ]; then
                say "$(awk -v net="$net" -v p="$p" -v n="$n" -v mi="$mi" -v ti="$ti" -v mb="$mb" \
                    -v tb="$tb" -v m1="$m1" -v t1="$t1" 'BEGIN { printf "scaling net=%s precision=%s replicas=%d speed_ratio=%.3f mem_ratio=%.3f mammo_eff=%.3f torch_eff=%.3f", net, p, n, mi / ti, mb / tb, mi / (n * m1), ti / (n * t1) }')"
            else
                say "scaling net=$net precision=$p replicas=$n FAILED (a run printed no result)"
                status=1
            fi
            n=$((n * 2))
        done
    done
done
echo "results: $out"
exit $status
