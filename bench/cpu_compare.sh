#!/bin/sh
# `mammo bench --device cpu` and the same step in Debian's PyTorch (bench/torch_cpu_ref.py) side by
# side on this machine, in one run: prints both lines and the ratios (speed: target >= 1.0; host
# memory, what each held resident over what it held before building its model), and writes them to
# bench/results/<date>-cpu-<cores>cores.txt (appended: one file holds the day's runs).
# Usage: sh bench/cpu_compare.sh [build-dir] [steps]   env: NET=resnet50 INPUT=224x224 BATCH=2
# TOP=SPEC (the whole-image classifier with those top blocks instead of the patch classifier)
# EVAL=1 (evaluation forward passes, `mammo bench --eval` and torch_cpu_ref.py --eval)
set -u
build=${1:-build}
steps=${2:-5}
net=${NET:-resnet50}
input=${INPUT:-224x224}
batch=${BATCH:-2}
top=${TOP:-}
eval_flag= mode=train
[ "${EVAL:-0}" = 1 ] && eval_flag=--eval mode=eval
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-/usr/bin/python3}
if ! "$python" -c "import torch, torchvision" 2>/dev/null; then
    echo "cpu_compare.sh: $python has no torch/torchvision (apt-get install python3-torch python3-torchvision)" >&2
    exit 1
fi
out="$here/results/$(date +%Y-%m-%d)-cpu-$(nproc)cores.txt"
m=$("$build/mammo" bench --net "$net" ${top:+--top "$top"} --input "$input" --batch "$batch" \
    --device cpu --steps "$steps" $eval_flag | grep '^mammo ')
t=$("$python" "$here/torch_cpu_ref.py" --net "$net" ${top:+--top "$top"} --input "$input" \
    --batch "$batch" --steps "$steps" $eval_flag | grep '^torch ')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
gemm=$("$build/mammo" version | sed -n 's/^CPU GEMM: //p') # OpenBLAS and the kernels it runs
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "?" }'; }
speed=$(ratio "$(field "$m" images_per_s)" "$(field "$t" images_per_s)")
mem=$(ratio "$(field "$m" host_peak_bytes)" "$(field "$t" host_peak_bytes)")
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, $cpu, $gemm"
    echo "$m"
    echo "$t"
    echo "compare net=$net top=${top:-none} mode=$mode device=cpu speed_ratio=$speed" \
        "mem_ratio=$mem"
} | tee -a "$out"
