# Sourced by bench/gpu_compare.sh and bench/gpu_scaling.sh: what both do before their runs.
# Expects `me` (the script's name), `build` and `here` (bench/). Sets `mammo`, `card` (the first
# GPU's name) and `results` (bench/results/<date>-<card>, the stem of the results file), or exits
# with one line when mammo is not built or there is no GPU.
mammo="$build/mammo"
if [ ! -x "$mammo" ]; then
    echo "$me: $mammo not found: build it first (cmake --build $build --target mammo)" >&2
    exit 1
fi
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$card" ]; then
    echo "$me: no GPU (nvidia-smi lists none)" >&2
    exit 1
fi
mkdir -p "$here/results"
results="$here/results/$(date +%Y-%m-%d)-$(echo "$card" | tr -c 'A-Za-z0-9\n' '-' | sed 's/-*$//')"

# Prints a line and appends it to the results file $out.
say() { echo "$1"; echo "$1" >>"$out"; }

# The value of key=... in a line.
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# The top blocks of the compared whole-image model of a trunk (the paper's best).
top_of() {
    case $1 in
    resnet50) echo "[512-512-1024]x2,[512-512-1024]x2" ;;
    vgg16) echo "512x1,512x1" ;;
    *) echo "$me: unknown net $1" >&2; return 1 ;;
    esac
}
