"""The full dBOT pre-training step in PyTorch: teacher forward + student
forward/backward + AdamW, the same model as ours (it reuses the reference
model written for the golden fixtures, tests/fixtures/gen_golden.py).

  /usr/bin/python3 bench/torch_step.py --model vit-tiny --img-size 32 --patch-size 4 --batch 64 --threads 1
  python3 bench/torch_step.py --model vit-base --img-size 224 --patch-size 16 --batch 64 --device cuda

Prints one JSON line: images_per_s, step_ms, backend, model, batch, threads.
TF32 is off on CUDA (fp32 eager), so the comparison with our f32 kernels is fair.
"""
import argparse
import importlib.util
import json
import os
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("golden", os.path.join(here, "..", "tests", "fixtures", "gen_golden.py"))
golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(golden)

PRESETS = {  # D, depth, heads, decoder D, depth, heads (src/models/config.ts)
    "vit-micro": (96, 4, 3, 64, 2, 4),
    "vit-tiny": (192, 12, 3, 128, 4, 4),
    "vit-small": (384, 12, 6, 256, 4, 8),
    "vit-base": (768, 12, 12, 512, 8, 16),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit-tiny")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    D, depth, heads, Dd, dd, dh = PRESETS[a.model]
    cfg = dict(img_size=a.img_size, patch_size=a.patch_size, in_chans=3, embed_dim=D, depth=depth,
               num_heads=heads, mlp_ratio=4, decoder_embed_dim=Dd, decoder_depth=dd,
               decoder_num_heads=dh, teacher_embed_dim=D, teacher_depth=depth, teacher_num_heads=heads,
               mask_ratio=0.75, target_eps=1e-6, smooth_l1_beta=2.0)
    dev = torch.device(a.device)
    student = golden.DBOTStudent(cfg, D).to(dev)
    teacher = golden.Encoder(a.img_size, a.patch_size, 3, D, depth, heads, 4).to(dev)
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-4,
                            betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
    L = (a.img_size // a.patch_size) ** 2
    imgs = torch.randn(a.batch, 3, a.img_size, a.img_size, device=dev)

    def step():
        noise = torch.rand(a.batch, L, device=dev)
        latent, mask, ids_restore = student.forward_encoder(imgs, noise, 0.75)
        pred = student.forward_decoder(latent, ids_restore)
        with torch.no_grad():
            target = golden.normalize_target(teacher.forward_full(imgs, final_norm=False), 1e-6)
        d = pred - target
        el = torch.where(d.abs() < 2.0, 0.25 * d * d, d.abs() - 1.0).mean(dim=-1)
        w = torch.cat([torch.ones(a.batch, 1, device=dev), mask.to(dev)], dim=1)
        loss = (el * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 3.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    if a.device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    if a.device == "cuda":
        torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / a.steps * 1000
    print(json.dumps({"images_per_s": a.batch / ms * 1000, "step_ms": ms, "backend": f"torch-{a.device}",
                      "model": a.model, "batch": a.batch, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
