"""transformers runtime (PyTorch): HF safetensors, AWQ GEMM and GGUF (both dequantized exactly: quality
and kernel references, not speed figures) and compressed-tensors checkpoints. float32 on CPU,
float16 on a GPU."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from core.registry import register_runtime
from evaluators.backends.torch_common import TorchDecodeMixin


def _load_awq_dequantized(path: Path, torch, dtype, device: str = "cpu"):
    """Build the model from its config and fill every AWQ linear with its exactly dequantized weight."""
    from transformers import AutoModelForCausalLM

    from evaluators.backends.awq_gemm import dequantize_gemm, read_awq_checkpoint

    config, group, state = read_awq_checkpoint(path, device)  # dequantized on the same device
    with torch.device(device):  # built (and randomly initialized, then overwritten) where it will run
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    dense = {}
    for name, t in state.items():
        if name.endswith(".qweight"):
            prefix = name[: -len(".qweight")]
            w = dequantize_gemm(t, state[prefix + ".qzeros"], state[prefix + ".scales"], group)
            dense[prefix + ".weight"] = w.to(dtype)
        elif not name.endswith((".qzeros", ".scales")):
            dense[name] = t.to(dtype) if t.is_floating_point() else t
    missing, unexpected = model.load_state_dict(dense, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"AWQ checkpoint does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    return model


def _max_memory(torch, n: int) -> dict:
    """90% of each GPU's free memory, for accelerate's placement."""
    return {i: int(torch.cuda.mem_get_info(i)[0] * 0.9) for i in range(n)}


@register_runtime("transformers", order=0, formats=("hf-safetensors", "hf-awq-gemm", "hf-compressed-tensors"),
                  dequant_formats=("gguf",), default=True,
                  summary="PyTorch eager; the fp16 reference, and quantized formats dequantized exactly")
class TransformersRuntime(TorchDecodeMixin):
    computes_dequantized = True

    @classmethod
    def from_spec(cls, spec, options) -> "TransformersRuntime":
        return cls(device=spec.device, hf_config_dir=spec.hf_config_dir, parallel=spec.parallel)

    @classmethod
    def gpu_layout(cls, n_gpus: int, fmt: str, shape, options) -> str:
        # tensor parallelism shards the checkpoint's own tensors: float checkpoints only (the dequantized
        # references of AWQ and GGUF are split by layer)
        tp = (fmt == "hf-safetensors" and shape.tp_plan and shape.kv_heads % n_gpus == 0 and shape.heads % n_gpus == 0)
        return "tensor-parallel" if tp else "layers"

    def __init__(self, device: str = "cpu", hf_config_dir: str | None = None, parallel: dict | None = None) -> None:
        self.notes: list[str] = []
        self.model = None
        self.device = device
        self.hf_config_dir = hf_config_dir
        self.parallel = parallel or {}

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        # CPU: float32 (exact; no native half-precision matmul on most CPUs); GPU: float16, as served
        self.dtype = torch.float32 if self.device == "cpu" else torch.float16
        if self.device != "cpu" and not torch.cuda.is_available():
            raise RuntimeError(f"device {self.device} asked for, but torch sees no GPU")
        layout, n = self.parallel.get("layout", "single"), int(self.parallel.get("gpus", 1))
        if layout == "tensor-parallel" and fmt == "hf-safetensors":
            self._load_tensor_parallel(artifact, torch)
            return
        # one device, or several by layer (accelerate's device_map): built on the CPU first when split
        where = "cpu" if layout == "layers" and n > 1 else self.device
        if fmt == "hf-awq-gemm":
            model = _load_awq_dequantized(artifact, torch, self.dtype, where)
            self.notes.append("AWQ weights dequantized exactly: a quality reference, not an INT4 speed figure")
        elif fmt == "gguf":
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(self.hf_config_dir) if self.hf_config_dir else None
            model = AutoModelForCausalLM.from_pretrained(artifact.parent, gguf_file=artifact.name, dtype=self.dtype,
                                                         config=config)
            self.notes.append("GGUF weights dequantized by gguf-py: the exact reference for llama.cpp's kernels, not a speed figure")
        else:
            if layout == "layers" and n > 1:  # placed layer by layer as it loads
                self.model = AutoModelForCausalLM.from_pretrained(artifact, dtype=self.dtype, device_map="auto",
                                                                  max_memory=_max_memory(torch, n)).eval()
                self._note_layers(n)
                return
            model = AutoModelForCausalLM.from_pretrained(artifact, dtype=self.dtype)
            if fmt == "hf-compressed-tensors":
                self.notes.append("compressed-tensors checkpoint run through transformers: a quality reference, not a speed figure")
        if layout == "layers" and n > 1:
            from accelerate import dispatch_model, infer_auto_device_map

            device_map = infer_auto_device_map(model, max_memory=_max_memory(torch, n),
                                               no_split_module_classes=model._no_split_modules)
            self.model = dispatch_model(model.eval(), device_map=device_map)
            self._note_layers(n)
            return
        self.model = model.to(self.device).eval()

    def _note_layers(self, n: int) -> None:
        self.device = "cuda:0"  # inputs enter at the embedding's GPU
        self.notes.append(f"split across {n} GPUs by layer (accelerate device_map): one GPU computes at a time")

    def _load_tensor_parallel(self, artifact: Path, torch) -> None:
        """PyTorch tensor parallelism as transformers exposes it: every process (one per GPU, under torchrun)
        holds a shard of each layer, and the logits are whole on every rank."""
        import os

        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(artifact, dtype=self.dtype, tp_plan="auto").eval()
        rank, world = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        self.device = f"cuda:{rank}" if self.device != "cpu" else "cpu"
        if world == 1 and self.device != "cpu":  # one process: transformers shards nothing and leaves it on the CPU
            self.model = self.model.to(self.device)
        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
        self.notes.append(f"tensor parallel over {world} processes (transformers tp_plan='auto', torch.distributed "
                          f"{backend})")

    def reopen(self, n_ctx: int) -> bool:
        return True  # the eager model takes any length; n_ctx sizes nothing here

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("torch", "transformers")}

    def compute_dtype(self) -> str:
        return str(self.dtype).replace("torch.", "") + ("" if self.device == "cpu" else f" on {self.device}")
