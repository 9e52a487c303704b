#!/usr/bin/env bash
# Our full pre-training step vs PyTorch's, back to back on this machine, and the ratio.
#   bash bench/compare_step.sh [--model vit-tiny --img-size 32 --patch-size 4 --batch 64] [--backend cpu]
# PyTorch runs at 1 and 2 threads; the ratio is against its best. On a GPU host:
#   source .gpu/gpu-env.sh; bash bench/compare_step.sh --model vit-base --img-size 224 --patch-size 16 --batch 64 --backend webgpu
set -euo pipefail
cd "$(dirname "$0")/.."
model=vit-tiny img=32 patch=4 batch=64 backend=cpu
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --img-size) img=$2; shift 2 ;;
    --patch-size) patch=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || PY=/usr/bin/python3
ours=$(deno task -q step-bench --model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch" --backend "$backend" | tail -n 1)
echo "ours:  $ours"
best=0
for t in 1 2; do
  theirs=$("$PY" bench/torch_step.py --model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch" --threads "$t" | tail -n 1)
  echo "torch: $theirs"
  best=$(python3 -c "import json,sys; print(max($best, json.loads(sys.argv[1])['images_per_s']))" "$theirs")
done
python3 -c "import json,sys; o=json.loads(sys.argv[1])['images_per_s']; print(f'ratio ours/torch(best): {o/float(sys.argv[2]):.2f}  ({o:.1f} vs {float(sys.argv[2]):.1f} img/s)')" "$ours" "$best"
