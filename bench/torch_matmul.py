"""PyTorch fp32 matmul timings on the shapes of bench/webgpu_matmul_table.ts.

Prints the same markdown table (shape | form | batch | variant | ms | GFLOP/s).
TF32 is OFF (`torch.backends.cuda.matmul.allow_tf32 = False`), so on CUDA this is
cuBLAS SGEMM: the fair fp32 comparison for the WGSL kernels. Transposed forms
use transposed views (cuBLAS handles them without copies), as the WGSL kernels do.
Falls back to the CPU when CUDA is absent.

    python3 bench/torch_matmul.py --shapes 4096x4096x4096,12608x2304x768:NT
    python3 bench/torch_matmul.py --quick
"""

import argparse
import re
import time

import torch

QUICK_SHAPES = "256x256x256,197x192x64:NT,64x192x197:TN@2,12x384x384:NT"


def parse_shapes(text):
    shapes = []
    for s in filter(None, text.split(",")):
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)(?::(NN|NT|TN|TT))?(?:@(\d+))?", s.strip(), re.I)
        if not m:
            raise ValueError(f'Cannot parse shape "{s}": expected MxNxK[:NN|NT|TN|TT][@BATCH]')
        M, N, K = int(m[1]), int(m[2]), int(m[3])
        form = (m[4] or "NN").upper()
        batch = int(m[5]) if m[5] else 1
        shapes.append((s.strip().split(":")[0].split("@")[0], form, batch, M, N, K))
    return shapes


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_matmul(device, form, batch, M, N, K, iters, reps):
    """Best ms per product over `reps` timings of `iters` products between syncs."""
    g = torch.Generator(device="cpu").manual_seed(1)
    # a stored [M,K] or [K,M] (TN/TT); b stored [K,N] or [N,K] (NT/TT); batched as (batch, ·, ·).
    a_shape = (batch, K, M) if form[0] == "T" else (batch, M, K)
    b_shape = (batch, N, K) if form[1] == "T" else (batch, K, N)
    a = (torch.rand(a_shape, generator=g) * 2 - 1).to(device)
    b = (torch.rand(b_shape, generator=g) * 2 - 1).to(device)
    opa = a.transpose(1, 2) if form[0] == "T" else a
    opb = b.transpose(1, 2) if form[1] == "T" else b
    out = torch.empty((batch, M, N), device=device)
    if batch == 1:
        opa, opb, out = opa[0], opb[0], out[0]
    torch.matmul(opa, opb, out=out)
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.matmul(opa, opb, out=out)
        sync(device)
        best = min(best, (time.perf_counter() - t0) * 1e3 / iters)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default=None, help="MxNxK[:FORM][@BATCH], comma-separated")
    p.add_argument("--quick", action="store_true", help="a few tiny shapes")
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    iters = args.iters or (2 if args.quick else 20)
    shapes = parse_shapes(args.shapes or QUICK_SHAPES)
    print(f"# PyTorch {torch.__version__} matmul, fp32 (TF32 off), device: {name}\n")
    print(f"{iters} products between syncs, best of {args.reps}.\n")
    print("| shape M×N×K | form | batch | variant | ms | GFLOP/s |")
    print("|---|---|---:|---|---:|---:|")
    for shape, form, batch, M, N, K in shapes:
        ms = time_matmul(device, form, batch, M, N, K, iters, args.reps)
        gf = 2 * M * N * K * batch / (ms * 1e6)
        print(f"| {shape} | {form} | {batch} | torch {device.type} | {ms:.3f} | {gf:.1f} |", flush=True)


if __name__ == "__main__":
    main()
