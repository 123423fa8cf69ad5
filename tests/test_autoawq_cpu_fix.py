"""AutoAWQ's scaling step alone (scales applied, nothing rounded) must leave the model's function
unchanged. Unpatched AutoAWQ 0.2.9 breaks it on CPU (its weight snapshot aliases the live
weights); the harness's patch restores it. Both halves are checked, so the test can fail."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.paths import CALIBRATION_TEXT, REPO_ROOT, WIKITEXT_TEST, venv_python
from tests.tiny_models import make_tiny_model

WORKER = REPO_ROOT / "quantizers" / "awq_autoawq_worker.py"
RECIPE = {"w_bit": 4, "q_group_size": 128, "zero_point": True, "version": "GEMM", "calib_samples": 16, "calib_seq_len": 128}


def _scale_only(src: Path, out: Path, fix: bool) -> None:
    cmd = [str(venv_python("autoawq")), str(WORKER), "--source", str(src), "--out", str(out), "--recipe",
           json.dumps(RECIPE), "--calib", str(CALIBRATION_TEXT), "--threads", "2", "--scale-only"]
    if not fix:
        cmd.append("--no-cpu-fix")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]


def _logits_and_ppl(model_dir: Path, ids: np.ndarray):
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        logits = m(input_ids=torch.from_numpy(ids)).logits.float()
    logp = torch.log_softmax(logits[:, :-1], -1)
    nll = -logp.gather(-1, torch.from_numpy(ids[:, 1:]).long()[..., None]).mean()
    return logits.numpy(), float(torch.exp(nll))


@pytest.mark.slow
def test_autoawq_scaling_alone_keeps_the_model(tmp_path, tokenizer_dir):
    if not venv_python("autoawq").exists():
        pytest.fail("the AutoAWQ environment is missing: run `make setup`")
    from transformers import AutoTokenizer

    src = make_tiny_model(tmp_path / "src", "llama", tokenizer_dir, seed=3, channel_spread=1.0, dtype="float32")
    tok = AutoTokenizer.from_pretrained(src)
    ids = np.asarray(tok(WIKITEXT_TEST.read_text()[:20000])["input_ids"][:512], dtype=np.int64).reshape(2, 256)
    _scale_only(src, tmp_path / "fixed", fix=True)
    _scale_only(src, tmp_path / "unpatched", fix=False)
    base, ppl0 = _logits_and_ppl(src, ids)
    fixed, ppl_fixed = _logits_and_ppl(tmp_path / "fixed", ids)
    bug, ppl_bug = _logits_and_ppl(tmp_path / "unpatched", ids)
    spread = np.linalg.norm(base - base.mean(-1, keepdims=True))
    err_fixed = np.linalg.norm(fixed - base) / spread
    err_bug = np.linalg.norm(bug - base) / spread
    print(f"PPL original {ppl0:.3f}, scaled (patched) {ppl_fixed:.3f}, scaled (unpatched) {ppl_bug:.3f}; "
          f"relative logit error patched {err_fixed:.2e}, unpatched {err_bug:.2e}")
    assert abs(ppl_fixed / ppl0 - 1) < 5e-3  # fp16 storage of the scaled weights
    assert err_fixed < 1e-2
    assert err_bug > 10 * err_fixed  # the unpatched CPU path really changes the model
