"""Log-likelihood requests scored in one left-padded batch give the numbers of one-at-a-time scoring."""
import numpy as np

from evaluators.backends.transformers_backend import TransformersRuntime


def test_batched_requests_match_single_scoring(tiny_llama):
    rt = TransformersRuntime()
    rt.load(tiny_llama, "hf-safetensors", 2, 256)
    rng = np.random.default_rng(0)
    seqs = [[int(t) for t in rng.integers(3, 40000, size=n)] for n in (5, 40, 17, 64, 2)]
    lasts = [6, 3, 9, 1, 6]
    batched = rt.prompt_logprobs(seqs, 3, last=lasts)
    for s, b, last in zip(seqs, batched, lasts):
        (one,) = rt.prompt_logprobs([s], 3, last=last)
        assert b.target_logp.shape == one.target_logp.shape == (min(last, len(s) - 1),)
        np.testing.assert_allclose(b.target_logp, one.target_logp, atol=2e-4)
        assert (b.ids[:, 0] == one.ids[:, 0]).all()


def test_llamacpp_packed_requests_match_single_scoring(tiny_llama, tmp_path):
    """Runs in a subprocess: llama.cpp and torch must not share a process (OpenMP pools spin)."""
    import subprocess
    import sys

    from tests.test_e2e import ROOT

    gguf = tmp_path / "m.gguf"
    subprocess.run([sys.executable, str(ROOT / ".cache/llama.cpp/convert_hf_to_gguf.py"), str(tiny_llama),
                    "--outtype", "f16", "--outfile", str(gguf)], check=True, capture_output=True,
                   env={"PYTHONPATH": str(ROOT / ".cache/llama.cpp/gguf-py"), "PATH": "/usr/bin:/bin"})
    code = f"""
import numpy as np
from pathlib import Path
from evaluators.backends.llamacpp_backend import LlamaCppRuntime
rt = LlamaCppRuntime(); rt.load(Path({str(gguf)!r}), "gguf", 2, 256)
rng = np.random.default_rng(0)
seqs = [[int(t) for t in rng.integers(3, 40000, size=n)] for n in (5, 40, 17, 64, 2, 200, 150)]
rt.TASK_BATCH_TOKENS = 256
lasts = [6, 2, 9, 6, 1, 30, 6]
batched = rt.prompt_logprobs(seqs, 3, last=lasts)
for s, b, last in zip(seqs, batched, lasts):
    one = super(LlamaCppRuntime, rt).prompt_logprobs([s], 3, last=last)[0]
    assert b.target_logp.shape == one.target_logp.shape, (b.target_logp.shape, one.target_logp.shape)
    assert np.abs(b.target_logp - one.target_logp).max() < 2e-2, np.abs(b.target_logp - one.target_logp).max()
print("OK")
"""
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
