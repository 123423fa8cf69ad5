"""A second 135M checkpoint for the two-model measurement: the default model with every weight matrix nudged by
seeded noise of 1% of its own standard deviation (a stand-in for "this week's fine-tune"; no download)."""
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

src, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
g = torch.Generator().manual_seed(49)
for f in src.iterdir():
    if f.suffix == ".safetensors":
        t = load_file(f)
        out = {}
        for k, v in t.items():
            if v.ndim == 2:
                noise = torch.randn(v.shape, generator=g, dtype=torch.float32) * v.float().std() * 0.01
                v = (v.float() + noise).to(v.dtype)
            out[k] = v.contiguous()
        save_file(out, dest / f.name, metadata={"format": "pt"})
    elif f.is_file():
        (dest / f.name).write_bytes(f.read_bytes())
print(dest)
