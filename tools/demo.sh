#!/bin/sh
# `make demo`: the paper's whole pipeline on a synthetic CBIS-DDSM download, on the CPU of a small
# machine, through exactly the code a full-size run uses:
#   synth -> index -> prep -> patches -> train-patch -> train-image -> predict (flip TTA) -> eval
#   -> report
# The configuration is small: a reduced-width ResNet50 trunk (--width-div), small images and
# patches, few epochs. The patch classifier starts from random weights here (no ImageNet trunk to
# fine-tune), so its schedule is the paper's third stage alone (all layers) at a higher rate; the
# whole-image schedule is the paper's two stages. What makes the whole-image stage learn at this
# scale is a strong patch classifier (validation accuracy ~0.95): with a weak one (~0.7) the
# whole-image AUC stays near chance, and at 0.88 it did too. After 10 patch epochs the classifier
# was still improving and landed at 0.88-0.98 depending on the CPU's rounding (test AUC 0.66 to
# 0.94); 14 epochs gave 0.96 and 0.99 (test AUC 0.950 and 0.954, seeds 1 and 2). Seed 3 reached
# 0.985 too and a test AUC of 0.863: with 76 test images the split alone moves the AUC that much.
# Every size and count can be changed through the environment, e.g.
#   DEMO_PATIENTS=400 DEMO_HEIGHT=576 DEMO_WIDTH=448 make demo
# Output: demo-out/ (the run folders, predictions, eval.json and report.html).
set -eu
build=${1:-build}
mammo="$build/mammo"
out=${DEMO_OUT:-demo-out}
patients=${DEMO_PATIENTS:-240}
height=${DEMO_HEIGHT:-288}
width=${DEMO_WIDTH:-224}
patch=${DEMO_PATCH:-64}
div=${DEMO_WIDTH_DIV:-8}
seed=${DEMO_SEED:-1}
patch_epochs=${DEMO_PATCH_EPOCHS:-0,0,14}
patch_lr=${DEMO_PATCH_LR:-3e-3,3e-3,2e-3}
image_epochs=${DEMO_IMAGE_EPOCHS:-2,10}
image_lr=${DEMO_IMAGE_LR:-1e-3,3e-4}
top=${DEMO_TOP:-[64-64-256]x1,[64-64-256]x1}

start=$(date +%s)
step() { echo; echo "== $* ($(($(date +%s) - start)) s)"; }

rm -rf "$out"
mkdir -p "$out"
step "synthetic CBIS-DDSM download: $patients patients"
"$mammo" synth --layout cbis-ddsm --out "$out/download" --patients "$patients" --seed "$seed"
step "index"
"$mammo" index --cbis-ddsm "$out/download" --out "$out/index.csv" --seed "$seed"
step "prep to ${height}x${width}"
"$mammo" prep --index "$out/index.csv" --out "$out/prep" --height "$height" --width "$width" --quiet
step "patches of ${patch}x${patch}"
"$mammo" patches --index "$out/prep/index.csv" --out "$out/patches" --size "$patch" --seed "$seed" --quiet
step "patch classifier (ResNet50 trunk, width 1/$div)"
"$mammo" train-patch --patches "$out/patches/patches.csv" --run "$out/patch-run" --net resnet50 \
    --width-div "$div" --input "${patch}x${patch}" --batch 32 --epochs "$patch_epochs" \
    --lr "$patch_lr" --seed "$seed"
step "whole-image classifier, top $top"
"$mammo" train-image --index "$out/prep/index.csv" --patch-model "$out/patch-run/best.safetensors" \
    --run "$out/image-run" --input "${height}x${width}" --top "$top" --batch 2 \
    --epochs "$image_epochs" --lr "$image_lr" --seed "$seed"
step "predict the test split with flip TTA"
"$mammo" predict --model "$out/image-run/best.safetensors" --index "$out/prep/index.csv" \
    --split test --tta --out "$out/image-run/predictions.csv"
step "evaluate"
"$mammo" eval --pred "$out/image-run/predictions.csv" --out "$out/image-run/eval.json"
"$mammo" report "$out/image-run"
auc=$(sed -n 's/^ *"auc": *\([0-9.]*\).*/\1/p' "$out/image-run/eval.json" | head -n 1)
echo
echo "demo: test AUC $auc on the synthetic test split; pipeline took $(($(date +%s) - start)) s"
echo "demo: report: $out/image-run/report.html"
