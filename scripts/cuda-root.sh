#!/bin/sh
# Print the CUDA toolkit's root directory (the one holding include/ and the
# libraries) for the nvcc given as $1. nvcc is often reached through a
# wrapper script or a symlink outside the toolkit (/usr/local/bin/nvcc), so
# its own path says nothing; nvcc itself reports the root it runs from as
# TOP in a dry run. CUDA_PATH / CUDA_HOME, when set, win.
set -eu
nvcc=${1:?usage: cuda-root.sh NVCC}
for root in "${CUDA_PATH:-}" "${CUDA_HOME:-}"; do
    if [ -n "$root" ] && [ -d "$root/include" ]; then
        readlink -f "$root"
        exit 0
    fi
done
top=$("$nvcc" -dryrun -c /dev/null/vgpu-probe.cu 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
if [ -n "$top" ] && [ -d "$top/include" ]; then
    readlink -f "$top"
    exit 0
fi
# Fall back to the conventional layout: <root>/bin/nvcc.
root=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
if [ -d "$root/include" ]; then
    echo "$root"
    exit 0
fi
echo "cuda-root.sh: cannot find the CUDA toolkit of $nvcc (set CUDA_PATH)" >&2
exit 1
