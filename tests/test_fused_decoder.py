"""The fused decoder of the transformers-compiled runtime on CPU: fused q/k/v and gate/up projections give
the unfused model's logits and tokens (dense and AWQ INT4), every one-token attention kind computes the
same attention, one compiled function serves every layer, and what it cannot run falls back, saying so."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cellspec import CellSpec
from evaluators.backends import make_runtime
from evaluators.backends.compiled_backend import CompiledRuntime
from evaluators.backends.decode_attention import KINDS, attend_many, attend_one, check_kind
from evaluators.backends.fused_decoder import unsupported_reason

PROMPT = list(range(200, 248))
IDS = np.arange(100, 164)
CPU_KINDS = [k for k in KINDS if k != "sdpa-efficient"]


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory, tokenizer_dir):
    from tests.tiny_models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2", "qwen2", tokenizer_dir, seed=2)


def runtime(path, fmt="hf-safetensors", **kw) -> CompiledRuntime:
    rt = CompiledRuntime(**kw)
    rt.load(path, fmt, 2, 128)
    return rt


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen3", "tiny_qwen2"])
def test_fused_projections_give_the_unfused_logits_and_tokens(arch, request):
    path = request.getfixturevalue(arch)
    fused, plain = runtime(path), runtime(path, decoder="transformers")
    assert type(fused.model).__name__ == "FusedCausalLM" and plain.decoder_kind == "transformers"
    calls = []
    layer = fused.model.decoder.layer
    fused.model.decoder.layer = lambda *a: calls.append(1) or layer(*a)
    a, b = fused.logits(IDS), plain.logits(IDS)
    assert calls, "scoring did not run the fused decoder"
    assert np.abs(a - b).max() < 1e-4 * np.abs(b).mean(), np.abs(a - b).max()
    fused.model.decoder.layer = layer
    assert fused.generate(PROMPT, 10).tokens == plain.generate(PROMPT, 10).tokens
    check = fused.check_decode(PROMPT[:20], 8)  # the compiled fused step against transformers' forward
    assert check["rel_mean_err"] < 1e-5 and check["top1_agreement"] == 1.0, check
    # the fused weight is the modules' storage: nothing is held twice
    assert fused.weight_bytes() == plain.weight_bytes()
    attn = fused.hf_model.model.layers[0].self_attn
    assert attn.k_proj.weight.data_ptr() == attn.q_proj.weight.data_ptr() + attn.q_proj.weight.nbytes
    if arch == "tiny_qwen2":
        assert attn.q_proj.bias is not None and fused.model.decoder.layers[0].qkv[1] is not None


def test_fused_int4_gives_the_unfused_int4_logits(tiny_awq):
    fused, plain = runtime(tiny_awq, "hf-awq-gemm"), runtime(tiny_awq, "hf-awq-gemm", decoder="transformers")
    assert fused.facts["quantized_linears"] == plain.facts["quantized_linears"] == 14
    assert fused.facts["fused_view_check"]["rel_err"] < 1e-5, fused.facts
    lw = fused.model.decoder.layers[0]
    assert lw.qkv[2] is not None and lw.qkv[0].shape[0] == 256 + 128 + 128  # one packed q/k/v (CPU layout: rows)
    a, b = fused.logits(IDS), plain.logits(IDS)
    assert np.abs(a - b).max() < 1e-4 * np.abs(b).mean(), np.abs(a - b).max()
    assert fused.generate(PROMPT, 10).tokens == plain.generate(PROMPT, 10).tokens
    assert fused.weight_bytes() == plain.weight_bytes()  # INT4 stays INT4, the views share the packing
    assert "aten._weight_int4pack_mm_for_cpu" in fused.compute_dtype()


def test_a_row_view_of_a_packed_int4_layer_is_that_rows_layer():
    from evaluators.backends.awq_gemm import dequantize_gemm
    from evaluators.backends.int4_tinygemm import Int4Linear, check_layer, pack_awq
    from tests.tiny_models import random_awq

    qw, qz, s = random_awq(256, 160, 64, seed=3)
    whole = Int4Linear(pack_awq(qw, qz, s, 64, torch.float32))
    x = torch.randn(3, 256)
    for a, b in ((64, 128), (128, 160)):  # a whole block of 64 rows (the CPU packing's), the shorter last one
        part = whole.rows(a, b)
        assert part.weight_int4.data_ptr() != whole.weight_int4.data_ptr()
        assert part.weight_int4.untyped_storage().data_ptr() == whole.weight_int4.untyped_storage().data_ptr()
        assert check_layer(part, qw[:, a // 8:b // 8], qz[:, a // 8:b // 8], s[:, a:b], 64)["rel_err"] < 1e-5
        assert torch.allclose(part(x), x @ dequantize_gemm(qw, qz, s, 64).t()[:, a:b], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="blocks of 64"):
        whole.rows(32, 96)  # would read another block's nibbles


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_every_one_token_attention_kind_computes_the_same_attention(kind):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 8, 1, 16, generator=g), torch.randn(2, 2, 40, 16, generator=g),
               torch.randn(2, 2, 40, 16, generator=g))
    mask = torch.zeros(2, 1, 1, 40, dtype=torch.bool)
    mask[0, ..., :17] = True
    mask[1, ..., :33] = True  # unfilled cache slots hold random values: the mask must hide them
    ref = torch.cat([attend_many(q[i:i + 1], k[i:i + 1, :, :n], v[i:i + 1, :, :n], None, 0.25)
                     for i, n in ((0, 17), (1, 33))])
    got = attend_one(q, k, v, mask, 0.25, kind)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-5), (got - ref).abs().max()


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_the_attention_switch_reaches_the_compiled_step(kind, tiny_qwen3):
    rt = make_runtime(CellSpec(runtime="transformers-compiled", device="cpu", prefill_tokens=48, decode_tokens=8,
                               options={"attention": kind}))
    rt.load(tiny_qwen3, "hf-safetensors", 2, 128)
    assert rt.model.decoder.shape.attention == kind and f"attention '{kind}'" in " ".join(rt.notes)
    check = rt.check_decode(PROMPT[:24], 8)
    assert check["rel_mean_err"] < 1e-5 and check["top1_agreement"] == 1.0, check


def test_a_cuda_only_or_unknown_attention_is_a_clear_error():
    with pytest.raises(ValueError, match="sdpa-efficient.*CUDA kernel"):
        check_kind("sdpa-efficient", "cpu")
    check_kind("sdpa-efficient", "cuda")
    with pytest.raises(ValueError, match="unknown decode attention"):
        CompiledRuntime(attention="flash")


def test_one_compiled_function_serves_every_layer(tiny_llama, tmp_path, tokenizer_dir):
    from torch._dynamo.utils import counters

    from tests.tiny_models import make_tiny_model

    deep = make_tiny_model(tmp_path / "deep", "llama", tokenizer_dir, layers=6, hidden=128)
    torch._dynamo.reset()
    counters.clear()
    rt = runtime(deep)
    rt.generate(PROMPT, 4)
    rt.generate_batch([PROMPT, PROMPT[::-1]], 4)
    assert counters["stats"]["unique_graphs"] == 2, dict(counters["stats"])  # one per batch size, not per layer
    assert set(rt.compile_seconds()) == {"1", "2"}


def test_what_the_fused_decoder_cannot_run_falls_back_and_says_so(tmp_path, tokenizer_dir):
    from transformers import AutoConfig

    from tests.tiny_models import make_tiny_model

    assert unsupported_reason(AutoConfig.for_model("llama")) is None
    assert "gemma" in unsupported_reason(AutoConfig.for_model("gemma"))
    assert "sliding" in unsupported_reason(AutoConfig.for_model("mistral", sliding_window=4096))
    path = make_tiny_model(tmp_path / "gelu", "llama", tokenizer_dir)
    cfg = (path / "config.json").read_text().replace('"silu"', '"gelu"')
    (path / "config.json").write_text(cfg)
    rt = runtime(path)
    assert rt.decoder_kind == "transformers" and type(rt.model).__name__ != "FusedCausalLM"
    assert any("fused decoder not used" in n and "gelu" in n for n in rt.notes)
    assert len(rt.generate(PROMPT, 4).tokens) == 5


def test_a_layer_that_fails_to_compile_falls_back_to_eager_and_says_so(tiny_qwen3):
    rt = runtime(tiny_qwen3)

    def broken(*a, **k):
        raise RuntimeError("inductor could not lower an op")

    rt.decoder._compiled = broken
    g = rt.generate(PROMPT[:20], 4)
    assert len(g.tokens) == 5 and rt.decoder.mode.startswith("eager")
    assert any("COMPILING FAILED" in n and "could not lower" in n for n in rt.notes)


def test_the_rope_table_is_made_once_before_any_step_and_never_moves(tiny_llama):
    """A captured step reads the RoPE table by address: a larger batch slot made after it must not reallocate
    the table (the batch-1 graph would read freed memory), and the batch-1 step still decodes right after the
    batch-8 runs. A run past the model's positions makes the table anew and retires every captured step."""
    rt = runtime(tiny_llama, mode="eager")
    graph, fused = rt.decoder, rt.model.decoder
    rt.generate(PROMPT, 4)
    ptr, n = fused._cos.data_ptr(), fused._cos.shape[0]
    assert n >= fused.max_positions > 0  # every position the model takes, before the first step
    rt.generate_batch([PROMPT] * 8, 4)
    rt.generate(PROMPT, 40)
    assert (fused._cos.data_ptr(), fused._cos.shape[0]) == (ptr, n)
    assert set(graph._slots) == {1, 8}
    check = rt.check_decode(PROMPT[:24], 8)  # the batch-1 step after the batch-8 runs
    assert check["rel_mean_err"] < 1e-5 and check["top1_agreement"] == 1.0, check
    graph._slot(2, n + 16)  # longer than the table: made anew, and the older steps are retired
    assert fused._cos.data_ptr() != ptr and set(graph._slots) == {2}
