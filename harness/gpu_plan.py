"""How many GPUs each cell runs on, and how it is split across them (issue 15).

`--gpus N` (default: every visible GPU) is the pool. The fp16 reference, llama.cpp's cells and the
dequantized references run across all N; a quantized checkpoint that an INT4 kernel reads (AWQ) takes the
fewest GPUs that hold it, one when it fits. A cell is split across its GPUs as follows:

- transformers: PyTorch tensor parallelism as transformers exposes it (`tp_plan="auto"`, one process per
  GPU under torchrun) where the architecture has a TP plan and its heads divide by the GPU count;
  otherwise accelerate's layer-wise `device_map` in one process;
- llama.cpp: its own split mode (`--llama-split-mode layer|row`) over the same GPUs;
- transformers-compiled (static cache + CUDA graphs) runs on one GPU only.

Each runtime declares its placement and split (evaluators/backends: Runtime.placement, Runtime.gpu_layout).

A model that no GPU count of the pool can hold is a clear error before anything is built."""
from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass

from core.errors import UserError

HEADROOM = 0.90  # of each GPU's memory usable for weights + KV cache (CUDA context, workspaces, fragmentation)
ACTIVATION_FRACTION = 0.05  # activations and logits over the weights, a rough allowance


@dataclass(frozen=True)
class Shape:
    """What the memory estimate needs of a model."""

    n_params: int
    layers: int
    kv_heads: int
    head_dim: int
    heads: int
    tp_plan: bool  # the architecture has a tensor-parallel plan in transformers


@dataclass(frozen=True)
class CellGpus:
    gpus: int
    layout: str  # "single" | "tensor-parallel" | "layers" | "llama.cpp split by layer" | "... by row"
    need_bytes: int

    def as_dict(self) -> dict:
        return asdict(self)


def visible_gpus(respect_visible: bool = True) -> list[int]:
    """Total memory in bytes of each visible GPU (CUDA_VISIBLE_DEVICES respected unless told not to: a node probe
    counts every GPU of its node, whatever Ray showed the probe), from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    mem = {}
    for line in out.strip().splitlines():
        try:
            i, m = (x.strip() for x in line.split(","))
            mem[int(i)] = int(m) << 20
        except ValueError:
            continue
    vis = os.environ.get("CUDA_VISIBLE_DEVICES") if respect_visible else None
    order = [int(x) for x in vis.split(",") if x.strip().isdigit()] if vis else sorted(mem)
    return [mem[i] for i in order if i in mem]


def topology() -> str | None:
    """`nvidia-smi topo -m`: how the GPUs are linked (NVLink NV#, PCIe PIX/PXB/PHB/SYS)."""
    try:
        p = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() or None


def need_bytes(shape: Shape, bytes_per_param: float, ctx: int, batch: int) -> int:
    """Weights + KV cache (float16, every layer, `batch` sequences of `ctx` tokens) + an activation allowance."""
    weights = shape.n_params * bytes_per_param
    kv = shape.layers * 2 * shape.kv_heads * shape.head_dim * ctx * batch * 2
    return int(weights * (1 + ACTIVATION_FRACTION) + kv)


def gpus_for(need: int, pool: list[int]) -> int | None:
    """The fewest GPUs of the pool whose usable memory together holds `need` (split evenly), or None."""
    for n in range(1, len(pool) + 1):
        if need / n <= min(pool[:n]) * HEADROOM:
            return n
    return None


def cell_gpus(info, shape: Shape, bytes_per_param: float, ctx: int, batch: int, pool: list[int], options=None,
              fmt: str = "hf-safetensors") -> CellGpus:
    """The GPUs and layout of one cell of runtime `info` (core.registry.RuntimeInfo), placed as the runtime
    declares (Runtime.placement, Runtime.gpu_layout); UserError when the pool cannot hold it."""
    runtime = info.name
    need = need_bytes(shape, bytes_per_param, ctx, batch)
    n = gpus_for(need, pool)
    placement = info.cls.placement(fmt)
    if n is not None and placement == "pool":
        n = len(pool)  # the whole pool, as asked (--gpus)
    if n is None:
        total = sum(pool) * HEADROOM / 1e9
        k = -(-need // int(min(pool) * HEADROOM))
        raise UserError(f"a {runtime} cell needs about {need / 1e9:.1f} GB of GPU memory (weights and KV cache), and the "
                        f"{len(pool)} GPU(s) given hold {total:.1f} GB usable: give it {k} such GPUs (--gpus {k}) or "
                        f"leave {runtime} out of --runtimes")
    if n == 1:
        return CellGpus(1, "single", need)
    if placement == "single":
        raise UserError(f"the {runtime} runtime runs on one GPU, and this model needs {n} ({need / 1e9:.1f} GB): "
                        f"leave {runtime} out for it")
    return CellGpus(n, info.cls.gpu_layout(n, fmt, shape, options), need)


def bytes_per_param(fmt: str, bits_per_weight: float | None) -> float:
    """Bytes a weight takes on the GPU: float16 for full-precision and dequantized references; the file's
    own bits per weight for formats a kernel reads as they are."""
    if fmt == "hf-safetensors" or bits_per_weight is None:
        return 2.0
    return bits_per_weight / 8


def shape_of(config: dict) -> Shape:
    """The estimate's shape from a config.json (n_params counted from the matrices' sizes)."""
    from transformers import AutoConfig

    h, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads", heads)
    hd = config.get("head_dim") or h // heads
    inter, vocab = config.get("intermediate_size", 4 * h), config["vocab_size"]
    per_layer = h * hd * (heads + 2 * kv) + heads * hd * h + 3 * h * inter
    n = layers * per_layer + vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "quantization_config"})
    return Shape(n, layers, kv, hd, heads, bool(getattr(cfg, "base_model_tp_plan", None)))
