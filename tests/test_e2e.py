"""End-to-end: `quantcompare compare` on tiny random-weight checkpoints, all four variants."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.schema import validate

ROOT = Path(__file__).resolve().parent.parent
FAST_ARGS = ["--windows", "3", "--awq-calib-samples", "16", "--awq-calib-seq-len", "128", "--speed-repeats", "1",
             "--decode-tokens", "16", "--prefill-tokens", "128", "--n-ctx", "256", "--limit", "20",
             "--serving-batches", "1,4", "--gen-prompts", "4", "--gen-tokens", "8", "--long-ctx", "1024",
             "--instructions", "6", "--instruct-tokens", "24"]


def compare(model: Path, out: Path, *extra: str, store: Path | None = None) -> subprocess.CompletedProcess:
    """A run with its own shared store (beside OUT unless given), so tests do not reuse each other's work."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", QC_STORE_DIR=str(store or out.parent / "store"))
    cmd = [sys.executable, "-m", "harness.cli", "compare", "--model", str(model), "--out", str(out), *FAST_ARGS, *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1500)


def _value(results, variant, runtime, metric):
    rows = [r for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == (variant, runtime, metric)]
    assert rows, f"no {metric} for {variant} × {runtime}"
    return rows[0]["value"]


def _check_run(out: Path, p: subprocess.CompletedProcess):
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert validate(results) == []
    cells = {(c["variant"], c["runtime"]): c for c in results["cells"]}
    assert set(cells) == {("fp16", "transformers"), ("gguf-f16", "llama.cpp"), ("gguf-q4_k_m", "llama.cpp"),
                          ("awq-int4", "transformers")}
    assert all(c["status"] == "ok" for c in cells.values())
    for v, rt in cells:
        assert _value(results, v, rt, "ppl") > 1
        assert _value(results, v, rt, "size_bytes") > 0
        if (v, rt) == ("awq-int4", "transformers"):  # dequantized weights: fp16's speed, so none is reported
            assert not [r for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == (v, rt, "decode_tok_s")]
        else:
            assert _value(results, v, rt, "decode_tok_s") > 0
    ref = _value(results, "fp16", "transformers", "ppl")
    assert abs(_value(results, "gguf-f16", "llama.cpp", "ppl") / ref - 1) < 0.005
    for v, rt in [("gguf-q4_k_m", "llama.cpp"), ("awq-int4", "transformers")]:
        assert _value(results, v, rt, "kld_mean") > 0
        assert _value(results, v, rt, "top1_agreement") <= 1.0
        assert _value(results, v, rt, "bits_per_weight") < _value(results, "fp16", "transformers", "bits_per_weight")
    for v in ("fp16", "gguf-f16", "gguf-q4_k_m", "awq-int4"):
        assert (out / "artifacts" / v / "manifest.json").is_file()
    assert results["manifests"]["awq-int4"]["calibration_sha256"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert not re.search(r"""(src|href)=['"]https?://""", html), "report must open offline"
    assert (out / "results.csv").read_text().startswith("variant,runtime,metric,value,ci_low,ci_high,unit")
    for v, rt in cells:  # lm-eval tasks ran on every cell, with stderr
        acc = [r for r in results["rows"] if (r["variant"], r["runtime"], r["metric"]) == (v, rt, "lambada_openai:acc")]
        assert acc and 0 <= acc[0]["value"] <= 1 and acc[0]["ci_low"] is not None
        assert _value(results, v, rt, "piqa:acc_norm") >= 0
    assert "Downstream accuracy" in html
    ins = results["instruction_following"]  # every measured cell answered the same 6 prompts, judged the same way
    assert len(ins["prompts"]) == 6 and {(c["variant"], c["runtime"]) for c in ins["cells"]} == set(cells)
    for c in ins["cells"]:
        assert c["status"] == "ok" and len(c["prompt_strict"]) == 6 and len(c["answers"]) == 6
        assert 0 <= _value(results, c["variant"], c["runtime"], "if_prompt_strict") <= 1
    assert _value(results, "gguf-f16", "llama.cpp", "if_prompt_strict_drop") is not None
    assert "Instruction following vs fp16" in html
    return results


@pytest.mark.slow
def test_compare_tiny_llama_then_cached_rerun_here_and_elsewhere(tiny_llama, tmp_path):
    """All four variants; the same OUT again reuses its cells; another OUT on the same machine builds and evaluates
    nothing again through the shared store, and says so; the stage table is in results.json and the report,
    progress and lines in OUT/run.log."""
    out, store = tmp_path / "run", tmp_path / "store"
    p = compare(tiny_llama, out)
    first = _check_run(out, p)
    assert "[awq-int4] building" in p.stdout
    t0 = time.time()
    p2 = compare(tiny_llama, out)
    again = _check_run(out, p2)
    assert "cached artifact reused" in p2.stdout and "cached result reused" in p2.stdout
    assert "building" not in p2.stdout
    assert time.time() - t0 < 60
    assert again["rows"] == first["rows"]
    t0 = time.time()
    p3 = compare(tiny_llama, tmp_path / "b", store=store)
    assert time.time() - t0 < 60
    assert p3.returncode == 0, p3.stdout[-3000:] + p3.stderr[-3000:]
    assert "building" not in p3.stdout and p3.stdout.count("cached artifact reused") == 4
    assert p3.stdout.count("cached result reused") == 16  # 4 quality, 4 task, 4 long-window, 4 instruction cells
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    stages = {s["name"]: s for s in results["stages"]}
    assert stages["build gguf-q4_k_m"]["cached"] and stages["evaluate fp16 × transformers"]["cached"]
    assert (tmp_path / "b" / "artifacts" / "gguf-q4_k_m").resolve().parent == (store / "artifacts").resolve()
    assert "Where the time went" in (tmp_path / "b" / "report.html").read_text()
    log = (out / "run.log").read_text()
    assert "[gguf-q4_k_m] building" in log and "window" in log and "stages:" in log
    assert [r for r in first["rows"] if r["metric"] == "ppl"] == [r for r in results["rows"] if r["metric"] == "ppl"]


@pytest.mark.slow
def test_compare_tiny_qwen3(tiny_qwen3, tmp_path):
    """Qwen3 through AutoAWQ (its GGUF conversion runs in tests/test_ray_executor.py's two-model run)."""
    out = tmp_path / "run"
    p = compare(tiny_qwen3, out, "--variants", "fp16,awq-int4", "--tasks", "none")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["source"]["model_type"] == "qwen3" and validate(results) == []
    assert all(c["status"] == "ok" for c in results["cells"]) and len(results["cells"]) == 2
    assert _value(results, "awq-int4", "transformers", "kld_mean") > 0
    assert _value(results, "awq-int4", "transformers", "bits_per_weight") < 16


@pytest.mark.slow
def test_llmcompressor_backend(tiny_llama, tmp_path):
    out = tmp_path / "run"
    p = compare(tiny_llama, out, "--variants", "fp16,awq-int4", "--awq-backend", "llmcompressor")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    m = results["manifests"]["awq-int4"]
    assert m["format"] == "hf-compressed-tensors" and m["tool"] == "llmcompressor"
    assert "llmcompressor" in m["tool_versions"]
    assert _value(results, "awq-int4", "transformers", "kld_mean") > 0
    assert _value(results, "awq-int4", "transformers", "bits_per_weight") < 16


@pytest.mark.slow
def test_vllm_runtime_and_tasks(tiny_llama, tmp_path):
    """vLLM (CPU build, own environment): same windows via prompt_logprobs, KLD from its top-k,
    serving sweep, and lm-eval tasks through it."""
    if not (ROOT / ".venvs" / "vllm" / "bin" / "python").is_file():
        pytest.fail("vLLM environment missing: run `make setup-vllm`")
    out = tmp_path / "run"
    p = compare(tiny_llama, out, "--variants", "fp16,awq-int4", "--runtimes", "transformers,vllm",
                "--instructions", "0")  # vLLM generates in the quality cell; an instruct cell would start it twice more
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert validate(results) == []
    cells = {(c["variant"], c["runtime"]): c for c in results["cells"]}
    assert cells[("fp16", "vllm")]["status"] == "ok", cells[("fp16", "vllm")]
    ref = _value(results, "fp16", "transformers", "ppl")
    assert abs(_value(results, "fp16", "vllm", "ppl") / ref - 1) < 0.005
    assert _value(results, "fp16", "vllm", "top1_agreement") > 0.95
    assert _value(results, "fp16", "vllm", "output_tok_s_b4") > 0
    assert _value(results, "fp16", "vllm", "ttft_p50_s_b1") > 0
    assert cells[("awq-int4", "vllm")]["status"] in ("ok", "unsupported")
    if cells[("awq-int4", "vllm")]["status"] == "ok":
        assert _value(results, "awq-int4", "vllm", "kld_mean") > 0
    assert 0 <= _value(results, "fp16", "vllm", "lambada_openai:acc") <= 1
    html = (out / "report.html").read_text()
    assert "Serving (vLLM)" in html and "Downstream accuracy" in html
