#!/usr/bin/env bash
# Our full pre-training step vs PyTorch's, on this machine, for two rows:
#   vit-micro, 28 px, patch 4, batch 256 (the reproduction's model)
#   vit-tiny, 32 px, patch 4, batch 64
#   bash bench/compare_step.sh [--rounds 3] [--backend cpu] [--rows "vit-micro:28:4:256 vit-tiny:32:4:64"]
# First the machine's large-SGEMM rate (2048³, OpenBLAS, its default threads) and each row's
# GEMM FLOPs per step (bench/step_flops.ts). Then rounds that interleave, per row: ours, then
# PyTorch at 1 and at 2 threads, so a busy spell on a shared machine hits both sides. Printed:
# every run, each round's ratio (ours / PyTorch's best thread count in that round), and per
# row the median over rounds of our images/s, PyTorch's, the ratio, and the step's GFLOP/s as
# a share of the SGEMM rate. On a GPU host:
#   source .gpu/gpu-env.sh; bash bench/compare_step.sh --rows vit-base:224:16:64 --backend webgpu
set -euo pipefail
cd "$(dirname "$0")/.."
rows="vit-micro:28:4:256 vit-tiny:32:4:64" backend=cpu rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || PY=/usr/bin/python3
DENO_RUN="deno run --allow-read --allow-env --allow-ffi=/usr/lib,/usr/lib64,/usr/local/lib,/opt/homebrew,native/build"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
sgemm=$($DENO_RUN bench/sgemm_rate.ts | tail -n 1)
echo "sgemm: $sgemm"
rate=$(field "$sgemm" gflop_per_s)
for row in $rows; do
  IFS=: read -r model img patch batch <<<"$row"
  flops=$($DENO_RUN bench/step_flops.ts --model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch" | tail -n 1)
  echo "flops $row: $flops"
  echo "$row flops $(field "$flops" gflop_per_step)" >>"$log"
done
for r in $(seq 1 "$rounds"); do
  for row in $rows; do
    IFS=: read -r model img patch batch <<<"$row"
    args=(--model "$model" --img-size "$img" --patch-size "$patch" --batch "$batch")
    ours=$(deno task -q step-bench "${args[@]}" --backend "$backend" | tail -n 1)
    echo "round $r $row ours:  $ours"
    o=$(field "$ours" images_per_s)
    t=0
    for th in 1 2; do
      theirs=$("$PY" bench/torch_step.py "${args[@]}" --threads "$th" | tail -n 1)
      echo "round $r $row torch: $theirs"
      t=$(python3 -c "import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))" "$t" "$(field "$theirs" images_per_s)")
    done
    python3 -c "import sys; o,t=float(sys.argv[1]),float(sys.argv[2]); print(f'round {sys.argv[3]} {sys.argv[4]} ratio ours/torch: {o/t:.2f}  ({o:.1f} vs {t:.1f} img/s)')" "$o" "$t" "$r" "$row"
    echo "$row run $o $t" >>"$log"
  done
done
python3 - "$log" "$rate" "$rounds" <<'PY'
import statistics, sys
lines = [l.split() for l in open(sys.argv[1])]
rate, rounds = float(sys.argv[2]), sys.argv[3]
print(f"large SGEMM (2048^3, OpenBLAS): {rate:.1f} GFLOP/s")
for row in dict.fromkeys(l[0] for l in lines):
    gflop = next(float(l[2]) for l in lines if l[0] == row and l[1] == "flops")
    runs = [(float(l[2]), float(l[3])) for l in lines if l[0] == row and l[1] == "run"]
    batch = int(row.split(":")[3])
    ours = statistics.median(o for o, _ in runs)
    torch = statistics.median(t for _, t in runs)
    ratio = statistics.median(o / t for o, t in runs)
    step_rate = gflop * ours / batch
    print(f"{row}: median of {rounds} rounds: ours {ours:.1f} img/s, torch {torch:.1f} img/s, "
          f"ratio {ratio:.2f}; step {gflop:.2f} GFLOP at {step_rate:.1f} GFLOP/s = "
          f"{100 * step_rate / rate:.0f}% of the SGEMM rate")
PY
