#!/bin/sh
# torchvision's ResNet50 and VGG16 saved by torch.save (random weights, non-trivial batch-norm
# statistics), read by `mammo forward --weights x.pth` (runtime/torch_pth.h): prints the largest
# difference from PyTorch's own logits on one random batch, for the zip format and for the legacy
# format with the state_dict in a DataParallel checkpoint dict. Needs Debian's python3-torch and
# python3-torchvision; writes about 1.3 GB of weights to a temporary folder (removed at the end).
# Usage: sh bench/pth_parity.sh [build-dir]
set -u
build=${1:-build}
python=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$python" - "$dir" <<'PY' || exit 1
import sys
import numpy as np
import torch
import torchvision

d = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(2, 3, 224, 224)
np.save(f"{d}/x.npy", x.numpy())
for name in ("resnet50", "vgg16"):
    m = getattr(torchvision.models, name)().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    sd = m.state_dict()
    torch.save(sd, f"{d}/{name}.pth")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}},
               f"{d}/{name}_legacy.pth", _use_new_zipfile_serialization=False)
    with torch.no_grad():
        np.save(f"{d}/{name}_torch.npy", m(x).numpy())
PY
status=0
for net in resnet50 vgg16; do
    for file in "$net.pth" "${net}_legacy.pth"; do
        if ! "$build/mammo" forward --net $net --weights "$dir/$file" --input "$dir/x.npy" \
            --output "$dir/y.npy"; then
            status=1
            continue
        fi
        "$python" -c "
import numpy as np
y, t = np.load('$dir/y.npy'), np.load('$dir/${net}_torch.npy')
print('pth_parity net=$net file=$file max_abs_diff=%.3g max_abs_logit=%.3g' %
      (np.abs(y - t).max(), np.abs(t).max()))"
    done
done
exit $status
