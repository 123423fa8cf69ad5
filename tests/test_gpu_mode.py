"""Pieces of the GPU / performance-only mode that run anywhere: synthetic sources, kernel checks,
batched decoding, AutoAWQ's config spelling; and the whole mode end to end on CPU (slow)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_legacy_config_spells_rope_for_transformers_4():
    from quantizers.hf_config_compat import legacy_config

    cfg, changed = legacy_config({"rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}, "dtype": "float16"})
    assert cfg["rope_theta"] == 100000.0 and cfg["torch_dtype"] == "float16" and "rope_scaling" not in cfg
    assert changed
    cfg, _ = legacy_config({"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}})
    assert cfg["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0}
    same, changed = legacy_config({"rope_theta": 10000.0, "torch_dtype": "float16"})
    assert changed == [] and same == {"rope_theta": 10000.0, "torch_dtype": "float16"}


def test_kernel_check_accepts_rounding_and_rejects_a_wrong_kernel():
    from core.registry import KernelTolerance
    from evaluators.kernel_check import compare_logits

    MAX_REL_MEAN_ERR = KernelTolerance().max_rel_mean_err

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(64, 500)) * 3
    close = compare_logits(ref + rng.normal(size=ref.shape) * 0.01, ref)
    assert close["rel_mean_err"] < MAX_REL_MEAN_ERR and close["top1_agreement"] > 0.95
    wrong = compare_logits(rng.normal(size=ref.shape) * 3, ref)
    assert wrong["rel_mean_err"] > MAX_REL_MEAN_ERR and wrong["top1_agreement"] < 0.2


def test_kernel_checks_weigh_the_error_against_the_quantization_effect(tmp_path):
    """An error above 5% passes when it is small against what quantizing did (rounding over many layers),
    and fails when the kernel sits as far from its weights as other quantized weights would."""
    from evaluators.kernel_check import kernel_checks

    rng = np.random.default_rng(1)
    fp16 = rng.normal(size=(128, 500)) * 3
    ref = fp16 + rng.normal(size=fp16.shape) * 1.5        # the dequantized weights' logits: ~40% away
    rounding = ref + rng.normal(size=fp16.shape) * 0.3    # ~8% from ref, a fifth of the quantization's effect
    other = fp16 + rng.normal(size=fp16.shape) * 1.5      # another quantization of the same model
    (tmp_path / "kernel-check").mkdir()
    for name, a in [("fp16__transformers", fp16), ("q__transformers", ref), ("q__llama.cpp", rounding), ("q__vllm", other)]:
        np.save(tmp_path / "kernel-check" / f"{name}.npy", a.astype(np.float32))
    docs = [{"variant": "q", "runtime": r, "status": "ok"} for r in ("transformers", "llama.cpp", "vllm")]
    checks = kernel_checks(docs, {"q": {"format": "gguf"}}, tmp_path)
    by = {c["runtime"]: c for c in checks}
    assert set(by) == {"llama.cpp", "vllm"}
    assert by["llama.cpp"]["rel_mean_err"] > 0.05 and by["llama.cpp"]["err_ratio"] < 1 / 3 and by["llama.cpp"]["ok"]
    assert by["vllm"]["err_ratio"] > 1 and not by["vllm"]["ok"]
    assert [c["runtime"] for c in checks if not c["ok"]] == ["vllm"] and "BROKEN KERNEL" in by["vllm"]["message"]


def test_synthetic_shape_matches_qwen3_4b():
    from harness.synthetic import SHAPES

    s = SHAPES["qwen3-4b"]
    assert (s["hidden_size"], s["num_hidden_layers"], s["num_attention_heads"], s["num_key_value_heads"], s["head_dim"],
            s["intermediate_size"], s["vocab_size"]) == (2560, 36, 32, 8, 128, 9728, 151936)


def test_batched_decoding_matches_single_sequences(tiny_qwen3, tmp_path):
    """generate_batch gives every sequence the tokens it gets alone (transformers and llama.cpp)."""
    from evaluators.backends.transformers_backend import TransformersRuntime

    rt = TransformersRuntime()
    rt.load(tiny_qwen3, "hf-safetensors", 2, 256)
    prompts = [[1, 5, 9, 200, 31], [1, 77, 8, 9, 1000]]
    alone = [rt.generate(p, 6).tokens for p in prompts]
    together = rt.generate_batch(prompts, 6)
    assert together.tokens == alone[0] and together.n_decode == 6
    logits = rt.logits(np.asarray(prompts[0]), keep_from=2)
    assert logits.shape == (3, 49152)
    full = rt.logits(np.asarray(prompts[0]))
    assert np.allclose(full[2:], logits, atol=1e-4)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=1800)


@pytest.mark.slow
def test_synthetic_weights_mode_on_cpu(tokenizer_dir, tmp_path):
    """--synthetic-weights: no quality rows; kernel checks pass for real kernels; batch-8-style decode;
    AutoAWQ's runtime reports itself unsupported on CPU rather than failing."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_CACHE_DIR=str(tmp_path / "cache"))
    out = tmp_path / "run"
    p = _cli("compare", "--synthetic-weights", "tiny-qwen3", "--tokenizer", str(tokenizer_dir), "--out", str(out),
             "--windows", "1", "--n-ctx", "256", "--prefill-tokens", "64", "--decode-tokens", "8", "--speed-repeats", "1",
             "--awq-calib-samples", "8", "--awq-calib-seq-len", "64", "--kernel-check-tokens", "48",
             "--decode-batches", "1,3", "--runtimes", "transformers,transformers-compiled,llama.cpp,autoawq", "--note", "a stated gap", env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    metrics = {(x["variant"], x["runtime"], x["metric"]) for x in r["rows"]}
    assert not any(m[2] in ("ppl", "kld_mean") for m in metrics), "quality must not be reported on random weights"
    assert not any(m[2].startswith(("lambada", "piqa", "gen_", "if_", "long_")) for m in metrics), metrics
    # ... yet every measure ran, and is timed: a release run's time is known before its weights exist
    stages = {s["name"]: s for s in r["stages"]}
    for name in ("lm-eval fp16 × transformers", "long windows gguf-q4_k_m × llama.cpp", "evaluate fp16 × transformers"):
        assert name in stages and stages[name]["wall_s"] > 0, sorted(stages)
    assert any(n.strip().startswith("of which generation") for n in stages), sorted(stages)
    # no quality flag on random weights (a speed-contention warning may come from the tests beside this one)
    assert r["generation"] is None and r["long_context"] is None
    assert not [f for f in r["flags"] if f["level"] != "warning" or "speed measured" not in f["message"]], r["flags"]
    assert ("gguf-q4_k_m", "llama.cpp", "decode_tok_s_b3") in metrics
    assert ("fp16", "transformers", "ttft_s") in metrics
    cells = {(c["variant"], c["runtime"]): c for c in r["cells"]}
    assert cells[("awq-int4", "autoawq")]["status"] == "unsupported"
    assert cells[("gguf-q4_k_m", "transformers")]["role"] == "measured"  # CPU: not split into roles
    checks = {(c["variant"], c["runtime"]): c for c in r["kernel_checks"]}
    assert checks[("gguf-q4_k_m", "llama.cpp")]["ok"], checks
    # AWQ through torch's INT4 kernel in the compiled decode loop: checked against the dequantized weights,
    # its compiled step against its eager forward, its speed measured at both batch sizes
    assert checks[("awq-int4", "transformers-compiled")]["ok"], checks
    for v in ("fp16", "awq-int4"):
        c = cells[(v, "transformers-compiled")]
        assert c["decode_check"]["rel_mean_err"] < 0.01 and set(c["compile_seconds"]) == {"1", "3"}, c
        assert c["decode_check_after_batches"]["rel_mean_err"] < 0.01, c  # batch 1 again, after batch 3 ran
        assert (v, "transformers-compiled", "decode_tok_s_b3") in metrics
    assert "int4" in cells[("awq-int4", "transformers-compiled")]["compute_dtype"]
    assert "a stated gap" in r["notes"] and r["source"]["origin"] == "synthetic"
    html = (out / "report.html").read_text()
    assert "PERFORMANCE ONLY" in html and "Kernel checks" in html
    # the report can be rendered again from results.json alone
    (out / "report.html").unlink()
    assert _cli("report", str(out / "results.json"), env=env).returncode == 0 and (out / "report.html").is_file()
