#!/bin/sh
# Makes full-size synthetic DICOM datasets for the data benchmarks (`mammo prep` images per second,
# the loader's decode rate) and reports how fast the generator itself writes them.
#
#   sh bench/bench_data.sh [BUILD_DIR] [OUT_DIR] [CBIS_PATIENTS] [INBREAST_PATIENTS]
#
# Writes OUT_DIR/cbis-ddsm (CBIS-DDSM layout, 16-bit images of about 4000 x 3000, 2 views per
# breast plus 8-bit full-size masks and small crops) and OUT_DIR/inbreast (INbreast layout,
# 14-bit 4084 x 3328 / 3328 x 2560). Defaults: build, BUILD_DIR/bench-data, 4 and 2 patients
# (about 9 and 7 full-size mammograms). The same seed always gives the same files, so runs on
# different machines benchmark identical inputs. Existing output folders are replaced.
set -e
build=${1:-build}
out=${2:-$build/bench-data}
cbis_patients=${3:-4}
inbreast_patients=${4:-2}
mammo="$build/mammo"
[ -x "$mammo" ] || { echo "bench_data: $mammo not found; build it first (cmake --build $build --target mammo)" >&2; exit 1; }

now() { date +%s.%N; }

gen() { # layout folder patients
    rm -rf "$out/$2"
    t0=$(now)
    "$mammo" synth --layout "$1" --full-size --out "$out/$2" --patients "$3" --seed 2024
    t1=$(now)
    images=$(($(wc -l <"$out/$2/synth-truth-images.csv") - 1))
    bytes=$(du -sb "$out/$2" | cut -f1)
    echo "$1: $images full-size DICOM images (+ masks/XML), $((bytes / 1048576)) MiB in" \
         "$(echo "$t1 - $t0" | bc) s: $(echo "scale=2; $images / ($t1 - $t0)" | bc) images/s" \
         "($(nproc) cores)"
}

mkdir -p "$out"
gen cbis-ddsm cbis-ddsm "$cbis_patients"
gen inbreast inbreast "$inbreast_patients"
echo "full images: find '$out/cbis-ddsm/CBIS-DDSM' -path '*full mammogram images*' -name '*.dcm';" \
     "'$out/inbreast/AllDICOMs/*.dcm'"
