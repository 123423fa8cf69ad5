"""AutoAWQ runtime: an AWQ GEMM checkpoint through AutoAWQ's own INT4 kernels (its Triton GEMM when
the CUDA extension awq_ext is absent) inside transformers 4.51. Runs in the AutoAWQ environment;
GPU only: its kernels have no CPU path worth timing."""
from __future__ import annotations

from pathlib import Path

from core.registry import register_runtime
from evaluators.backends.base import Unsupported
from evaluators.backends.torch_common import TorchDecodeMixin, package_versions


@register_runtime("autoawq", order=4, formats=("hf-awq-gemm",), env="autoawq",
                  summary="AutoAWQ's own INT4 kernels (GPU only), in the AutoAWQ environment")
class AutoAwqRuntime(TorchDecodeMixin):
    @classmethod
    def from_spec(cls, spec, options) -> "AutoAwqRuntime":
        return cls(device=spec.device if spec.device != "cpu" else "cpu")

    @classmethod
    def placement(cls, fmt: str) -> str:
        return "fewest"  # an INT4 checkpoint takes the fewest GPUs that hold it

    def __init__(self, device: str = "cuda") -> None:
        self.notes: list[str] = []
        self.device = device
        self.model = None

    def load(self, artifact: Path, fmt: str, threads: int, n_ctx: int) -> None:
        import torch

        if self.device == "cpu" or not torch.cuda.is_available():
            raise Unsupported("AutoAWQ's INT4 kernels (CUDA extension or Triton) need a GPU; on CPU the "
                              "transformers runtime runs the exactly dequantized weights instead")
        from awq import AutoAWQForCausalLM
        from awq.modules.linear import gemm

        torch.set_num_threads(threads)
        self.torch = torch
        # accelerate's dispatch takes "balanced"/"auto"/a dict, not "cuda": the whole model on one GPU
        index = int(self.device.split(":")[1]) if ":" in self.device else 0
        wrapper = AutoAWQForCausalLM.from_quantized(str(artifact), fuse_layers=False, device_map={"": index},
                                                    max_seq_len=max(n_ctx, 2048))
        self.model = wrapper.model.eval()
        kernel = "awq_ext (CUDA)" if gemm.awq_ext is not None else "Triton GEMM" if gemm.TRITON_AVAILABLE else "naive dequantize"
        self.kernel = kernel
        self.notes.append(f"AutoAWQ WQLinear_GEMM through {kernel}; float16 activations")

    def versions(self) -> dict[str, str]:
        return package_versions("autoawq", "torch", "transformers")

    def compute_dtype(self) -> str:
        return f"int4 weights (AWQ GEMM, {self.kernel}), float16 activations"
