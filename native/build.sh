#!/usr/bin/env bash
# Builds native/build/libdbot_cpu.so (the CPU backend's native elementwise kernels) with the
# system C compiler (Debian: gcc). Optional: without it the CPU backend uses its
# WebAssembly SIMD kernels. `deno task build-native` runs this.
#
# --if-needed (what the tasks run first): build only when the library is missing or older
# than dbot_cpu.c or this script, say so in one line, and stay silent otherwise; without a
# C compiler, or when the build fails, exit 0 (the backend's one-line description then
# says the native kernels are not built and how to build them).
set -euo pipefail
cd "$(dirname "$0")"
CC=${CC:-cc}
ext=so
[ "$(uname)" = Darwin ] && ext=dylib
lib="build/libdbot_cpu.$ext"
if [ "${1:-}" = --if-needed ]; then
  [ -f "$lib" ] && [ "$lib" -nt dbot_cpu.c ] && [ "$lib" -nt build.sh ] && exit 0
  command -v "$CC" >/dev/null 2>&1 || exit 0
  what=$([ -f "$lib" ] && echo "rebuilding the stale" || echo "building the")
  echo "$what native CPU kernels (native/$lib) with $CC; deno task build-native does it by hand" >&2
  bash build.sh >/dev/null 2>&1 || echo "the native kernels did not build: run deno task build-native to see why" >&2
  exit 0
fi
mkdir -p build
# A private temporary file, renamed into place: a concurrent build or a run loading the
# library never sees half a file.
tmp="$lib.$$.tmp"
trap 'rm -f "$tmp"' EXIT
# -fno-trapping-math lets the clamps vectorise; no -ffast-math: NaN must propagate.
"$CC" -O3 -fPIC -shared -fno-math-errno -fno-trapping-math -fvisibility=hidden -Wall -Werror \
  -o "$tmp" dbot_cpu.c
mv "$tmp" "$lib"
echo "built native/$lib ($("$CC" --version | head -n 1))"
