"""Bad MODEL values: one line on stderr, exit code 2, earlier runs untouched."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args, tmp_path, **env):
    e = dict(os.environ, HF_HUB_OFFLINE="1", **env)
    return subprocess.run([sys.executable, "-m", "harness.cli", "compare", *args], cwd=ROOT, capture_output=True,
                          text=True, env=e, timeout=120)


@pytest.fixture
def earlier_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"earlier": True}))
    return out


def _assert_clean_failure(p, out, needle):
    assert p.returncode == 2, p.stderr
    lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr and needle in lines[0]
    assert json.loads((out / "results.json").read_text()) == {"earlier": True}
    assert sorted(x.name for x in out.iterdir()) == ["results.json"]


def test_missing_path(tmp_path, earlier_run):
    p = _run(["--model", str(tmp_path / "nope"), "--out", str(earlier_run)], tmp_path)
    _assert_clean_failure(p, earlier_run, "does not exist")


def test_folder_without_config(tmp_path, earlier_run):
    d = tmp_path / "empty"
    d.mkdir()
    p = _run(["--model", str(d), "--out", str(earlier_run)], tmp_path)
    _assert_clean_failure(p, earlier_run, "no config.json")


def test_unsupported_architecture(tmp_path, earlier_run):
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    p = _run(["--model", str(d), "--out", str(earlier_run)], tmp_path)
    _assert_clean_failure(p, earlier_run, "unsupported architecture 'bert'")


def test_corrupted_weights(tmp_path, earlier_run):
    d = tmp_path / "corrupt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (d / "tokenizer.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    p = _run(["--model", str(d), "--out", str(earlier_run)], tmp_path)
    _assert_clean_failure(p, earlier_run, "unreadable safetensors")


def test_hub_id_offline(tmp_path, earlier_run):
    p = _run(["--model", "SomeOrg/some-model-that-is-not-cached", "--out", str(earlier_run)], tmp_path,
             HF_HOME=str(tmp_path / "hf"))
    _assert_clean_failure(p, earlier_run, "cannot download 'SomeOrg/some-model-that-is-not-cached'")


def test_unknown_variant(tmp_path, earlier_run):
    p = _run(["--variants", "fp16,gptq", "--out", str(earlier_run)], tmp_path)
    _assert_clean_failure(p, earlier_run, "unknown variant")
