#!/bin/sh
# The GPU work of a session on a lent machine, in stages that each fit one call of the device tool
# (10 minutes): logs and results go to $OUT (or /tmp/gpu-out), which the tool brings back.
#
#   sh bench/gpu_session.sh build     configure and build (carry .devdeps: bench/device_setup.sh)
#   sh bench/gpu_session.sh tests     the GPU tests, one log each, and a summary line per test
#   sh bench/gpu_session.sh search    cuDNN's choices per shape for ResNet50 and VGG16 (tf32),
#                                     with MM_CUDNN_VERBOSE=1: legacy algorithms, graph plans, GEMMs
#   sh bench/gpu_session.sh compare   bench/gpu_compare.sh (mammo and PyTorch side by side)
#   sh bench/gpu_session.sh compare-resnet50 compare-vgg16
#                                     the same one net per stage (each call within 10 minutes even
#                                     when cuDNN's searches are long; results appended)
#   sh bench/gpu_session.sh extras    only the runs `all` ends with (below), on a build made before
#   sh bench/gpu_session.sh all       everything that fits one call, most important first: a build
#                                     of the command line and the GPU tests for this card only,
#                                     those tests, then the side-by-side comparisons one (net,
#                                     precision) at a time, tf32 first (ResNet50 tf32 was the
#                                     closest to its target: 1.62x on 2026-11-27's second H200
#                                     run, 1.01x before), then the memory-bound
#                                     ops and a profile of ResNet50 tf32 (tf32_focus), fp32 and
#                                     bf16, while
#                                     DEADLINE seconds (default 540) are not spent; results
#                                     appended as they come,
#                                     each mammo run's convolution searches (MM_CUDNN_VERBOSE=1;
#                                     shapes found in the algo cache are not searched: their
#                                     candidates' times are in algo-cache/*.txt)
#                                     kept as mammo-<net>-<precision>.log.gz; then, if time is
#                                     left, fp32 and tf32 without Winograd
#                                     (MM_CONV_WINOGRAD=0; fp32-no-winograd.txt,
#                                     tf32-no-winograd.txt), bench_ops_cuda's 3x3 forward
#                                     convolutions and filter gradients on cuDNN and as
#                                     Winograd in fp32
#                                     (ops-fp32-wino.txt), ResNet50 tf32 profiles of both
#                                     (profile-*.txt),
#                                     tf32 with filter gradients added (MM_CONV_DW_OVERWRITE=0),
#                                     fp32 and tf32 without data gradients as forward
#                                     convolutions (MM_CONV_DGRAD_FWD=0), tf32 without
#                                     cuDNN's fused conv+bias+ReLU (MM_CONV_FUSED=0),
#                                     with H200 run 2's recomputation, with
#                                     --deterministic, with --recompute-conv 64, bf16 with
#                                     --feed, fp32 with MM_CONV_WS_CHUNKS=0,
#                                     bench_ops_cuda tf32, tf32 with runtime-compiled engines
#                                     (MM_CUDNN_RTC=1) (tf32-dw-add.txt, fp32-no-dgrad-fwd.txt,
#                                     tf32-no-dgrad-fwd.txt, tf32-no-fused-bias-relu.txt,
#                                     tf32-recompute-run2.txt,
#                                     tf32-deterministic.txt, tf32-recompute-conv-64.txt,
#                                     bf16-feed.txt, fp32-no-chunks.txt, ops-tf32.txt, tf32-rtc.txt
#                                     and tf32-rtc-search.log.gz). env: TESTS
#                                     (the GPU tests to run), PRECISIONS (default "tf32 fp32 bf16"),
#                                     EXTRAS=0 (none of the runs after the comparisons)
#
# Stages run in the order given: `sh bench/gpu_session.sh build tests`. The device tool brings
# back at most 8 files: at the end every log and extra is packed into $out/logs.tgz (with
# algo-cache/, to be committed as bench/algo-cache/), and the comparison's results (20*.txt)
# stay beside it.
set -u
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.." || exit 1
. bench/device_setup.sh
# cuDNN's choices kept between sessions (mammo's --algo-cache, conv_disk.c): seeded from
# bench/algo-cache/ (the files earlier sessions brought back, one per card, committed), kept in
# $out/algo-cache and packed into logs.tgz to be committed there again. A shape found there is
# not searched (VGG16's fp32 searches took 98 s of an H200's time); a file of another cuDNN or
# search version is searched again. The tests keep none (the harness sets MM_ALGO_CACHE=off).
export MM_ALGO_CACHE="$out/algo-cache"
mkdir -p "$MM_ALGO_CACHE"
cp bench/algo-cache/*.txt "$MM_ALGO_CACHE/" 2>/dev/null

resnet_top="[512-512-1024]x2,[512-512-1024]x2"
tests=${TESTS:-"test_step_cuda test_ops_cuda_misc test_ops_cuda test_nets_parity test_passes_cuda \
test_cli_cuda test_infer test_deterministic_cuda test_dist_cuda"}
status=0
start=$(date +%s)
# Packs every log, verbose search and extra run of $out into logs.tgz (the comparison's results,
# 20*.txt, stay beside it): the device tool brings back at most 8 files.
pack() {
    (
        cd "$out" || exit 1
        set -- $(ls ./*.log ./*.log.gz ./*.txt 2>/dev/null | grep -v '^\./20')
        [ -n "$(ls algo-cache 2>/dev/null)" ] && set -- "$@" algo-cache
        if [ $# -gt 0 ] && tar czf logs.tgz "$@"; then rm -rf "$@"; fi
        rm -f 20*-cpu-*.txt 20*-run[0-9].txt
    )
}
deadline=${DEADLINE:-540}
left() { echo $((deadline - ($(date +%s) - start))); }
# mammo_only FILE FLAGS...: `mammo bench` of ResNet50 and VGG16 (whole image, 1152x896, batch 2,
# CUDA graph) with FLAGS while time is left, the result lines appended to $out/FILE (and all it
# prints to $LOG, where set)
mammo_only() {
    file=$1
    shift
    for net in resnet50 vgg16; do
        [ "$(left)" -gt 90 ] || break
        top=$resnet_top
        [ $net = vgg16 ] && top="512x1,512x1"
        timeout "$(left)" build/mammo bench --net $net --top "$top" --input 1152x896 \
            --batch 2 --device cuda --steps 10 --cuda-graph "$@" 2>&1 |
            tee -a "${LOG:-/dev/null}" | grep '^mammo ' >>"$out/$file"
    done
}
# The runs after the comparisons, while time is left: fp32 and tf32 without our Winograd
# (MM_CONV_WINOGRAD=0), and bench_ops_cuda's 3x3 forward convolutions and filter gradients
# both ways in fp32 (ops-fp32-wino.txt); where ResNet50's tf32 time goes (the furthest from its
# target), op by op and kernel by kernel on both sides; tf32 with filter gradients added into
# the zeroed gradient (MM_CONV_DW_OVERWRITE=0, beta 1, as before their first writers wrote them
# with beta 0); fp32 and tf32 with every data gradient on cuDNN's backward-data algorithms
# (MM_CONV_DGRAD_FWD=0, not as forward convolutions); tf32 with every biased convolution and its
# ReLU apart (MM_CONV_FUSED=0, not cuDNN's fused call); tf32 with the recomputation of H200 run 2
# (the stem recomputed, no slack: --recompute-conv 147 --recompute-slack 0), so what the defaults of
# 2026-11-26's later sessions buy (the stem kept, residual-chain links kept within 20% more
# activation memory) is measured on the same card; tf32 deterministic; what recomputing fewer
# convolutions buys in tf32 (--recompute-conv 64: the 128-channel 1x1s kept too); what feeding
# the batch and reading the loss every step costs in bf16; fp32 without chunks of samples
# (MM_CONV_WS_CHUNKS=0: what they save and cost); bench_ops_cuda tf32 (ops-tf32.txt): each op of
# the step alone, the memory-bound ones' GB/s beside a device copy's; bf16 evaluation passes
# beside PyTorch's (EVAL=1, in the results file); last tf32 with cuDNN's
# runtime-compiled engines among the candidates. The mammo runs find their convolution choices
# kept by the comparison's runs (--algo-cache), so they start in seconds (but the last, whose
# search settings differ).
extras() {
    # fp32 and tf32 with no convolution as our Winograd (what it buys), and each 3x3 stride-1
    # forward convolution and filter gradient of a ResNet50 step both ways in fp32 (conv_*_on_cudnn,
    # conv_*_on_wino)
    (
        export MM_CONV_WINOGRAD=0
        mammo_only fp32-no-winograd.txt --precision fp32
        mammo_only tf32-no-winograd.txt --precision tf32
    )
    [ "$(left)" -gt 90 ] && timeout "$(left)" build/bench_ops_cuda fp32 1152 896 2 _on_ \
        >"$out/ops-fp32-wino.txt" 2>&1
    if [ "$(left)" -gt 120 ]; then
        timeout "$(left)" build/mammo bench --net resnet50 --top "$resnet_top" \
            --input 1152x896 --batch 2 --device cuda --precision tf32 --steps 3 \
            --warmup 1 --profile 3 >"$out/profile-mammo-resnet50-tf32.txt" 2>&1
        timeout "$(left)" python3 bench/torch_ref.py --net resnet50 --precision tf32 \
            --steps 3 --warmup 2 --profile 3 >"$out/profile-torch-resnet50-tf32.txt" 2>&1
    fi
    # filter gradients added with beta 1 into the zeroed gradient, as before their first writer
    # wrote them with beta 0
    (
        export MM_CONV_DW_OVERWRITE=0
        mammo_only tf32-dw-add.txt --precision tf32
    )
    # data gradients never run as forward convolutions (what running them so buys)
    (
        export MM_CONV_DGRAD_FWD=0
        mammo_only fp32-no-dgrad-fwd.txt --precision fp32
        mammo_only tf32-no-dgrad-fwd.txt --precision tf32
    )
    # biased convolutions never in cuDNN's fused call with their ReLU (what it buys: VGG16)
    (
        export MM_CONV_FUSED=0
        mammo_only tf32-no-fused-bias-relu.txt --precision tf32
    )
    mammo_only tf32-recompute-run2.txt --precision tf32 --recompute-conv 147 --recompute-slack 0
    mammo_only tf32-deterministic.txt --precision tf32 --deterministic
    mammo_only tf32-recompute-conv-64.txt --precision tf32 --recompute-conv 64
    mammo_only bf16-feed.txt --precision bf16 --feed
    # fp32 with every convolution on the whole batch (no chunks of samples to need less scratch)
    (
        export MM_CONV_WS_CHUNKS=0
        mammo_only fp32-no-chunks.txt --precision fp32
    )
    # each op of a ResNet50 step alone at full size, memory-bound ones against a copy's GB/s
    [ "$(left)" -gt 60 ] && timeout "$(left)" build/bench_ops_cuda tf32 >"$out/ops-tf32.txt" 2>&1
    # evaluation passes (predict's work) beside PyTorch's, in bf16: appended to the results
    if [ "$(left)" -gt 120 ]; then
        EVAL=1 PRECISIONS=bf16 APPEND=1 WARMUP=2 timeout "$(left)" sh bench/gpu_compare.sh build 10
        cp bench/results/"$(date +%Y-%m-%d)"-*.txt "$out/" 2>/dev/null
    fi
    # last, as it may take the time left: tf32 with cuDNN's runtime-compiled engines among the
    # candidates (PyTorch's filter keeps them; each plan compiles kernels while searched), their
    # search logged
    (
        export MM_CUDNN_RTC=1 MM_CUDNN_VERBOSE=1 LOG="$out/tf32-rtc-search.log"
        mammo_only tf32-rtc.txt --precision tf32
        gzip -f "$LOG" 2>/dev/null
    )
}
# After the tf32 comparisons: ResNet50 tf32 was the pair closest to its target (1.01x on
# 2026-11-27, 1.62x after the batch norm's 4-channel kernels), with its step about half outside
# the convolutions (conv_searched_ms=8.7 of 15.4 ms): the memory-bound ops alone against a copy's
# GB/s (ops-memory-tf32.txt; the last figures are in
# bench/results/2026-11-27-NVIDIA-H200-run2-ops-memory-tf32.txt), then the step op by op
# (profile-mammo-resnet50-tf32.txt).
tf32_focus() {
    for f in batchnorm relu copy add; do
        [ "$(left)" -gt 60 ] || return
        timeout "$(left)" build/bench_ops_cuda tf32 1152 896 2 $f >>"$out/ops-memory-tf32.txt" 2>&1
    done
    [ "$(left)" -gt 90 ] || return
    timeout "$(left)" build/mammo bench --net resnet50 --top "$resnet_top" --input 1152x896 \
        --batch 2 --device cuda --precision tf32 --steps 3 --warmup 1 --profile 3 \
        >"$out/profile-mammo-resnet50-tf32.txt" 2>&1
}
for stage in "$@"; do
    case $stage in
    build)
        cmake -S . -B build -DMM_DICOM=OFF >"$out/cmake.log" 2>&1 &&
            cmake --build build -j16 >"$out/build.log" 2>&1
        rc=$?
        tail -n 5 "$out/build.log"
        [ $rc -eq 0 ] || status=1
        ;;
    tests)
        for t in test_ops_cuda test_ops_cuda_misc test_step_cuda test_nets_parity \
            test_passes_cuda test_cli_cuda test_infer test_cuda_fuse test_cudnn_desc \
            test_bench_cmd test_deterministic_cuda test_algo_cache_cuda test_dist_cuda; do
            (cd build && MM_TEST_TMP=/tmp/mm-test timeout 240 "./$t") >"$out/$t.log" 2>&1
            echo "$t: $(tail -n 1 "$out/$t.log")"
            grep -q ' 0 failed' "$out/$t.log" || status=1
        done
        ;;
    search)
        for p in tf32 fp32; do # every shape searched, none kept
            MM_ALGO_CACHE=off MM_CUDNN_VERBOSE=1 timeout 240 build/mammo bench --net resnet50 \
                --top "$resnet_top" --input 1152x896 --batch 2 --device cuda --precision $p \
                --steps 3 >"$out/search-resnet50-$p.txt" 2>&1
            tail -n 1 "$out/search-resnet50-$p.txt"
        done
        MM_ALGO_CACHE=off MM_CUDNN_VERBOSE=1 timeout 240 build/mammo bench --net vgg16 \
            --top 512x1,512x1 --input 1152x896 --batch 2 --device cuda --precision fp32 \
            --steps 3 >"$out/search-vgg16-fp32.txt" 2>&1
        tail -n 1 "$out/search-vgg16-fp32.txt"
        ;;
    compare)
        WARMUP=2 sh bench/gpu_compare.sh build 20 || status=1
        cp bench/results/"$(date +%Y-%m-%d)"-*.txt "$out/" 2>/dev/null
        ;;
    all)
        arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 |
            tr -d '.')
        cmake -S . -B build -DMM_DICOM=OFF -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}" \
            >"$out/cmake.log" 2>&1 &&
            cmake --build build -j16 --target mammo bench_ops_cuda $tests >"$out/build.log" 2>&1
        rc=$?
        tail -n 3 "$out/build.log"
        [ $rc -eq 0 ] || { status=1; continue; }
        echo "built in $(($(date +%s) - start)) s"
        for t in $tests; do
            [ "$(left)" -gt 60 ] || break
            (cd build && MM_TEST_TMP=/tmp/mm-test timeout 150 "./$t") >"$out/$t.log" 2>&1
            echo "$t: $(tail -n 1 "$out/$t.log")"
            grep -q ' 0 failed' "$out/$t.log" || status=1
        done
        for p in ${PRECISIONS:-tf32 fp32 bf16}; do
            for net in resnet50 vgg16; do
                [ "$(left)" -gt 100 ] || { echo "no time left for $net $p"; continue; }
                LOGDIR=$out MM_CUDNN_VERBOSE=1 NETS=$net PRECISIONS=$p APPEND=1 WARMUP=2 \
                    timeout "$(left)" sh bench/gpu_compare.sh build 10 || status=1
                gzip -f "$out/mammo-$net-$p.log" 2>/dev/null
                cp bench/results/"$(date +%Y-%m-%d)"-*.txt "$out/" 2>/dev/null
            done
            [ "$p" = tf32 ] && tf32_focus
        done
        [ "${EXTRAS:-1}" = 0 ] && continue
        extras
        ;;
    extras)
        extras
        ;;
    compare-resnet50 | compare-vgg16)
        NETS=${stage#compare-} APPEND=1 WARMUP=2 sh bench/gpu_compare.sh build 20 || status=1
        cp bench/results/"$(date +%Y-%m-%d)"-*.txt "$out/" 2>/dev/null
        ;;
    *)
        echo "gpu_session.sh: unknown stage $stage (build, tests, search, compare," \
            "compare-resnet50, compare-vgg16, all, extras)" >&2
        exit 1
        ;;
    esac
done
pack
exit $status
