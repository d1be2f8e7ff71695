# Rewrites a .cu file so the host compiler takes it (see cuemu.h): launches become operator
# calls of cuemu::cfg and cuemu::args; `extern __shared__ T name[];` becomes a pointer to the
# launch's dynamic shared memory (filled with garbage at each block).
s/<<</ << cuemu::cfg(/g
s/>>>(/) << cuemu::args(/g
s/extern __shared__ \([A-Za-z0-9_]*\) \([A-Za-z0-9_]*\)\[\];/\1 *\2 = (\1 *)cuemu::dyn_smem();/
# `__shared__ T name[...];` becomes static storage that the first thread of each block to reach
# it fills with garbage, as a block's shared memory starts on the device.
s/^\( *\)__shared__ \([A-Za-z0-9_]*\) \([A-Za-z0-9_]*\)\(\[.*\]\);/\1static \2 \3\4; cuemu::shared_begin(\3, sizeof \3);/
