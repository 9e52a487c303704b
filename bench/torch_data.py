"""torchvision ImageFolder + DataLoader (PIL) throughput: RandomResizedCrop 224 (scale 0.2-1,
bicubic) + flip + ToTensor + Normalize, the transform dbot's data_bench.ts runs.

usage: python3 bench/torch_data.py DIR WORKERS IMAGES [BATCH]
prints one JSON line: {"workers", "images", "images_per_s"} (timed from the first batch on).
"""
import json
import sys
import time

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

root, workers, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
torch.set_num_threads(1)
tf = transforms.Compose([
    transforms.RandomResizedCrop(224, scale=(0.2, 1.0),
                                 interpolation=transforms.InterpolationMode.BICUBIC),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])
ds = datasets.ImageFolder(root, transform=tf)
g = torch.Generator().manual_seed(0)
idx = torch.randperm(len(ds), generator=g)[:n].tolist()
extra = {"prefetch_factor": 4} if workers else {}
loader = DataLoader(Subset(ds, idx), batch_size=batch, shuffle=False, num_workers=workers, **extra)
it = iter(loader)
next(it)  # workers started and warm
t0 = time.perf_counter()
count = 0
for x, _ in it:
    count += x.shape[0]
dt = time.perf_counter() - t0
print(json.dumps({"workers": workers, "images": count, "images_per_s": count / dt}))
