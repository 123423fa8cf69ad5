"""The GPU decode paths' code on CPU: AWQ packing converted to torch's INT4 kernel layout (exact against
the dequantized weights), a model built from an AWQ checkpoint on that kernel, and the static-cache
compiled decode loop against the eager forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluators.backends.awq_gemm import dequantize_gemm
from evaluators.backends.int4_tinygemm import Int4Linear, check_layer, pack_awq
from evaluators.kernel_check import compare_logits, verdict
from tests.tiny_models import random_awq


@pytest.mark.parametrize("group", [64, 128])
def test_int4_kernel_computes_the_awq_weights(group):
    qw, qz, s = random_awq(512, 96, group)
    layer = Int4Linear(pack_awq(qw, qz, s, group, torch.float32))
    c = check_layer(layer, qw, qz, s, group)
    assert c["rel_err"] < 1e-5, c
    x = torch.randn(3, 5, 512)  # any leading shape
    ref = x @ dequantize_gemm(qw, qz, s, group).t()
    assert torch.allclose(layer(x), ref, rtol=1e-4, atol=1e-4)


def test_the_layer_check_catches_other_weights():
    qw, qz, s = random_awq(256, 64, 128)
    wrong = Int4Linear(pack_awq(qw, qz, s.flip(0), 128, torch.float32))  # groups' scales swapped
    assert check_layer(wrong, qw, qz, s, 128)["rel_err"] > 0.05


def test_unsupported_group_is_a_clear_error():
    qw, qz, s = random_awq(256, 64, 16)
    with pytest.raises(ValueError, match="group size 16"):
        pack_awq(qw, qz, s, 16, torch.float32)


def test_int4_model_matches_the_dequantized_reference(tiny_awq):
    from evaluators.backends.compiled_backend import CompiledRuntime
    from evaluators.backends.transformers_backend import TransformersRuntime

    ids = np.arange(100, 164)
    ref = TransformersRuntime()
    ref.load(tiny_awq, "hf-awq-gemm", 2, 128)
    rt = CompiledRuntime(mode="eager")
    rt.load(tiny_awq, "hf-awq-gemm", 2, 128)
    assert rt.facts["quantized_linears"] == 14 and rt.facts["first_layer_check"]["rel_err"] < 1e-5
    c = compare_logits(rt.logits(ids), ref.logits(ids))
    assert c["rel_mean_err"] < 1e-4, c
    assert verdict(c, None)[0]
    # INT4 in memory: the decoder layers hold about 4.25 bits per weight (scales and zeros of group 128)
    def layer_bytes(model):
        return sum(t.numel() * t.element_size() for t in list(model.model.layers.parameters())
                   + list(model.model.layers.buffers()))
    ratio = layer_bytes(rt.hf_model) / layer_bytes(ref.model)  # against float32
    assert 4.0 / 32 < ratio < 4.6 / 32, ratio
    assert "aten._weight_int4pack_mm_for_cpu" in rt.compute_dtype()


def test_compiled_decode_matches_eager(tiny_qwen3):
    """torch.compile's step (inductor on CPU) gives the eager forward's logits and tokens; the timed loop
    reuses one graph per batch size."""
    from evaluators.backends import make_runtime
    from evaluators.backends.transformers_backend import TransformersRuntime

    prompt = list(range(200, 248))
    from core.cellspec import CellSpec

    rt = make_runtime(CellSpec(runtime="transformers-compiled", device="cpu", prefill_tokens=48, decode_tokens=12))
    rt.load(tiny_qwen3, "hf-safetensors", 2, 128)
    g = rt.generate(prompt, 12)
    eager = TransformersRuntime()
    eager.load(tiny_qwen3, "hf-safetensors", 2, 128)
    assert g.tokens == eager.generate(prompt, 12).tokens
    check = rt.check_decode(prompt[:20], 8)
    assert check["rel_mean_err"] < 1e-4 and check["top1_agreement"] == 1.0, check
    # batch 2 decodes both prompts as batch 1 would
    b = rt.generate_batch([prompt, prompt[::-1]], 6)
    assert b.tokens == g.tokens[:7] and b.n_decode == 6
    assert set(rt.compile_seconds()) == {"1", "2"}
    assert "static KV cache" in " ".join(rt.notes)


def test_decode_profile_summary_per_token():
    from evaluators.decode_profile import kind_of, summarize

    step = [("gemv2T_kernel", 20.0)] * 4 + [("gemv2T_kernel", 100.0)] + [("triton_poi_fused_1", 2.0)] * 8
    s = summarize(step * 4, steps=4, layers=2, wall_ms_per_token=0.5)
    assert s["kernels_per_token"] == 13 and abs(s["gpu_busy_ms_per_token"] - 0.196) < 1e-9
    assert s["largest_kernel_ms"] == 0.1 and abs(s["per_layer_ms"] - 0.048) < 1e-9
    assert s["by_kind"]["fused by inductor (Triton)"] == {"kernels": 8.0, "ms": 0.016}
    assert s["gpu_busy_pct_of_wall"] == 39.2
    assert kind_of("void at::native::(anonymous namespace)::tinygemm_m16n8k16_chunk_kernel") == "int4 matmul (tinygemm)"
    assert kind_of("flash_fwd_splitkv_kernel") == "attention"


def test_a_step_that_fails_to_compile_falls_back_to_eager_and_says_so(tiny_qwen3):
    """transformers' modules (decoder "transformers"); the fused decoder's layer: tests/test_fused_decoder.py."""
    from evaluators.backends.compiled_backend import CompiledRuntime

    rt = CompiledRuntime(decoder="transformers")
    rt.load(tiny_qwen3, "hf-safetensors", 2, 128)

    def broken(*a, **k):
        raise RuntimeError("inductor could not lower an op")

    rt.decoder._step = broken
    g = rt.generate(list(range(300, 320)), 4)
    assert len(g.tokens) == 5 and rt.decoder.mode.startswith("eager")
    assert any("COMPILING FAILED" in n and "could not lower" in n for n in rt.notes)
