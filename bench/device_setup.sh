#!/bin/sh
# Sourced on a GPU machine that has CUDA, cuDNN and PyTorch but not our Debian build dependencies:
# unpacks the .deb files carried in .devdeps/ into /tmp/sysroot and points CMake and the loader at
# them. DICOM is built off there. .devdeps/ (git-ignored; the device tool's `carry`) is made on
# this machine with:
#   mkdir -p .devdeps && cd .devdeps && apt-get download libopenblas-dev libopenblas-pthread-dev \
#       libopenblas0-pthread libgfortran5 libjansson-dev libjansson4 libpkgconf3
mkdir -p /tmp/sysroot
for f in .devdeps/*.deb; do dpkg -x "$f" /tmp/sysroot; done
export CMAKE_PREFIX_PATH=/tmp/sysroot/usr
export CPATH=/tmp/sysroot/usr/include:/tmp/sysroot/usr/include/x86_64-linux-gnu
export LIBRARY_PATH=/tmp/sysroot/usr/lib/x86_64-linux-gnu:/tmp/sysroot/usr/lib/x86_64-linux-gnu/openblas-pthread
export LD_LIBRARY_PATH=$LIBRARY_PATH:${LD_LIBRARY_PATH:-}
