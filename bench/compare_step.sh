#!/usr/bin/env bash
# Our full pre-training step vs PyTorch's, back to back on this machine, and the ratio.
#   bash bench/compare_step.sh [--model vit-tiny --img-size 32 --patch-size 4 --batch 64] [--backend cpu] [--rounds 3]
# Each round runs ours, then PyTorch at 1 and at 2 threads; the rounds interleave so that a
# busy spell on a shared machine hits both sides. Printed: every run, each round's ratio
# (ours / PyTorch's best thread count in that round) and the ratio of the best of each side
# over all rounds. On a GPU host:
#   source .gpu/gpu-env.sh; bash bench/compare_step.sh --model vit-base --img-size 224 --patch-size 16 --batch 64 --backend webgpu
set -euo pipefail
cd "$(dirname "$0")/.."
model=vit-tiny img=32 patch=4 batch=64 backend=cpu rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --img-size) img=$2; shift 2 ;;
    --patch-size) patch=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || PY=/usr/bin/python3
ips() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['images_per_s'])" "$1"; }
best_ours=0 best_torch=0
for r in $(seq 1 "$rounds"); do
  ours=$(deno task -q step-bench --model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch" --backend "$backend" | tail -n 1)
  echo "round $r ours:  $ours"
  o=$(ips "$ours")
  t=0
  for th in 1 2; do
    theirs=$("$PY" bench/torch_step.py --model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch" --threads "$th" | tail -n 1)
    echo "round $r torch: $theirs"
    t=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$t" "$(ips "$theirs")")
  done
  python3 -c "import sys; o,t=float(sys.argv[1]),float(sys.argv[2]); print(f'round {sys.argv[3]} ratio ours/torch: {o/t:.2f}  ({o:.1f} vs {t:.1f} img/s)')" "$o" "$t" "$r"
  best_ours=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$best_ours" "$o")
  best_torch=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$best_torch" "$t")
done
python3 -c "import sys; o,t=float(sys.argv[1]),float(sys.argv[2]); print(f'best of {sys.argv[3]} rounds, ratio ours/torch: {o/t:.2f}  ({o:.1f} vs {t:.1f} img/s)')" "$best_ours" "$best_torch" "$rounds"
