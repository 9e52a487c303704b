#!/usr/bin/env bash
# Builds native/build/libdbot_cpu.so (the CPU backend's native elementwise kernels) with the
# system C compiler (Debian: gcc). Optional: without it the CPU backend uses its
# WebAssembly SIMD kernels. `deno task build-native` runs this.
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-cc}
mkdir -p build
ext=so
[ "$(uname)" = Darwin ] && ext=dylib
# -fno-trapping-math lets the clamps vectorise; no -ffast-math: NaN must propagate.
"$CC" -O3 -fPIC -shared -fno-math-errno -fno-trapping-math -fvisibility=hidden -Wall -Werror \
  -o "build/libdbot_cpu.$ext.tmp" dbot_cpu.c
mv "build/libdbot_cpu.$ext.tmp" "build/libdbot_cpu.$ext"
echo "built native/build/libdbot_cpu.$ext ($("$CC" --version | head -n 1))"
