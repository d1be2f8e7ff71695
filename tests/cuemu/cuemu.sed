# Rewrites a .cu file so the host compiler takes it (see cuemu.h): launches become operator
# calls of cuemu::cfg and cuemu::args; `extern __shared__ T name[];` becomes a pointer to the
# launch's dynamic shared memory.
s/<<</ << cuemu::cfg(/g
s/>>>(/) << cuemu::args(/g
s/extern __shared__ \([A-Za-z0-9_]*\) \([A-Za-z0-9_]*\)\[\];/\1 *\2 = (\1 *)cuemu::dyn_smem();/
