#!/usr/bin/env bash
# WebGPU (WGSL) matmul vs PyTorch fp32 (cuBLAS SGEMM, TF32 off) on 4096³ and the
# ViT-B training GEMMs. The one prepared command for a GPU host (no network):
#
#   source .gpu/gpu-env.sh; bash bench/h100_matmul.sh            # full run, ~3-5 min
#   bash bench/h100_matmul.sh --quick                            # tiny shapes, any machine
#
# Writes $OUT/webgpu_matmul.md, $OUT/torch_matmul.md and $OUT/h100_matmul.log
# (OUT defaults to runs/h100_matmul). ViT-B, batch 64, 224 px, patch 16: rows
# 64·197 = 12608 (full) and 64·50 = 3200 (masked student). Per Linear (in → out):
# forward NT  y = x·Wᵀ        M=rows N=out K=in
# backward NN dx = dy·W       M=rows N=in  K=out
# weight  TN  dW = dyᵀ·x      M=out  N=in  K=rows   (accumulated in training)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-runs/h100_matmul}"
mkdir -p "$OUT"
export DENO_WEBGPU_BACKEND="${DENO_WEBGPU_BACKEND:-vulkan}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
PYTHON="${PYTHON:-python3}"
LOG="$OUT/h100_matmul.log"

QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1

if ((QUICK)); then
  FWD="256x256x256,197x192x64:NT,12x384x384:NT"
  WGRAD="64x192x197:TN@2,64x64x2048:TN"
  ITERS=2
  REPS=2
else
  FWD="4096x4096x4096"
  WGRAD=""
  for R in 12608 3200; do
    # qkv 768→2304, proj 768→768, fc1 768→3072, fc2 3072→768
    for io in 768:2304 768:768 768:3072 3072:768; do
      IN=${io%:*}
      O=${io#*:}
      FWD+=",${R}x${O}x${IN}:NT,${R}x${IN}x${O}:NN"
      WGRAD+="${WGRAD:+,}${O}x${IN}x${R}:TN"
    done
  done
  # attention, B·NH = 64·12 = 768 heads: q·kᵀ and att·v
  FWD+=",197x197x64:NT@768,197x64x197:NN@768"
  ITERS=10
  REPS=3
fi

{
  echo "# matmul benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv
  deno --version | head -1
} 2>&1 | tee "$LOG"

run_webgpu() { # shapes variants
  timeout 400 deno run --allow-read --allow-env --allow-ffi bench/webgpu_matmul_table.ts \
    --shapes "$1" --variants "$2" --iters "$ITERS" --reps "$REPS"
}

{
  run_webgpu "$FWD" "auto,tiled128,tiled64,simple"
  echo
  run_webgpu "$WGRAD" "auto,tiled128,tiled64,tiled64/4,tiled64/8,tiled128/4,simple"
} 2>&1 | tee "$OUT/webgpu_matmul.md" | tee -a "$LOG"
ALL="$FWD,$WGRAD"
timeout 300 "$PYTHON" bench/torch_matmul.py --shapes "$ALL" --iters "$ITERS" --reps "$REPS" \
  2>&1 | tee "$OUT/torch_matmul.md" | tee -a "$LOG"
echo "results in $OUT" | tee -a "$LOG"
