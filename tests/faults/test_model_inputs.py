"""Bad MODEL values: one line on stderr naming the problem, exit 2, an earlier run untouched."""
import json
import sys

from tests.faults.helpers import ROOT, assert_clean, earlier_run, private_copy, qc


def _compare(model, tmp, *extra, **env):
    out = earlier_run(tmp)
    return qc(["compare", "--model", str(model), "--out", str(out), *extra], tmp, **env), out


def test_missing_path(tmp_path):
    p, out = _compare(tmp_path / "nope", tmp_path)
    assert_clean(p, "does not exist", out=out)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    p, out = _compare(tmp_path / "empty", tmp_path)
    assert_clean(p, "no config.json", out=out)


def test_a_file_instead_of_a_folder(tmp_path):
    f = tmp_path / "weights.safetensors"
    f.write_bytes(b"0" * 64)
    p, out = _compare(f, tmp_path)
    assert_clean(p, "is not a folder", out=out)


def test_config_without_weights(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama"}))
    p, out = _compare(d, tmp_path)
    assert_clean(p, "has no weights", out=out)


def test_garbage_safetensors(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    p, out = _compare(d, tmp_path)
    assert_clean(p, "not a readable safetensors file", out=out)


def test_truncated_safetensors(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    f = d / "model.safetensors"
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size // 2)
    p, out = _compare(d, tmp_path)
    assert_clean(p, "is truncated", out=out)


def test_tensors_that_do_not_match_the_config(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_size"] = 512
    (d / "config.json").write_text(json.dumps(cfg))
    p, out = _compare(d, tmp_path)
    assert_clean(p, "do not match config.json", out=out)


def test_unsupported_architecture(tmp_path):
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    p, out = _compare(d, tmp_path)
    assert_clean(p, "unsupported architecture 'bert'", out=out)


def test_remote_code_is_refused_unless_allowed(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    p, out = _compare(d, tmp_path)
    assert_clean(p, "--trust-remote-code", out=out)
    ok = qc(["compare", "--model", str(d), "--out", str(tmp_path / "ok"), "--variants", "fp16", "--build-only",
             "--trust-remote-code"], tmp_path)
    assert ok.returncode == 0 and "remote code ran" not in ok.stdout + ok.stderr, ok.stderr[-1500:]


def test_pickle_weights_are_refused_unless_allowed_and_never_unpickled_by_default(tmp_path, tiny_llama):
    import torch
    from safetensors.torch import load_file

    d = private_copy(tiny_llama, tmp_path)
    state = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    torch.save(state, d / "pytorch_model.bin")
    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil"
    evil.mkdir()
    for f in d.iterdir():
        if f.name != "pytorch_model.bin":
            (evil / f.name).write_bytes(f.read_bytes())

    class Boom:  # a pickle that runs code when loaded the unsafe way
        def __reduce__(self):
            return (open, (str(marker), "w"))

    import pickle

    (evil / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Boom()}))
    p, out = _compare(evil, tmp_path)
    assert_clean(p, "--allow-pickle", out=out)
    assert not marker.exists()
    bad = qc(["compare", "--model", str(evil), "--out", str(tmp_path / "bad"), "--allow-pickle"], tmp_path)
    assert_clean(bad, "the weights-only loader refused it")
    assert not marker.exists()
    ok = qc(["compare", "--model", str(d), "--out", str(tmp_path / "ok"), "--variants", "fp16", "--build-only",
             "--allow-pickle"], tmp_path, QC_CACHE_DIR=tmp_path / "cache")
    assert ok.returncode == 0, ok.stderr[-1500:]


def test_hub_id_while_offline(tmp_path):
    p, out = _compare("SomeOrg/some-model-that-is-not-cached", tmp_path, HF_HOME=tmp_path / "hf", HF_HUB_OFFLINE="1")
    assert_clean(p, "cannot download 'SomeOrg/some-model-that-is-not-cached'", out=out)


def test_a_gguf_file_where_the_fp16_source_belongs(tmp_path):
    f = tmp_path / "model-q4_k_m.gguf"
    f.write_bytes(b"GGUF" + b"\0" * 60)
    p, out = _compare(f, tmp_path)
    assert_clean(p, "is a GGUF file", out=out)


def test_an_awq_checkpoint_where_the_fp16_source_belongs(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128}
    (d / "config.json").write_text(json.dumps(cfg))
    p, out = _compare(d, tmp_path)
    assert_clean(p, "already quantized (awq)", out=out)


def test_debug_shows_the_traceback(tmp_path):
    p = qc(["--debug", "compare", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], tmp_path)
    assert p.returncode != 0 and "Traceback" in p.stderr and "does not exist" in p.stderr


def test_unknown_variant(tmp_path):
    p, out = _compare(tmp_path / "x", tmp_path, "--variants", "fp16,gptq")
    assert_clean(p, "unknown variant", out=out)


assert sys.version_info >= (3, 10) and ROOT.is_dir()


def _damage_tensor(d, value: float):
    """Set one element of one weight tensor to `value` (as a corrupted fine-tune would carry)."""
    from safetensors.numpy import load_file, save_file

    f = d / "model.safetensors"
    tensors = load_file(str(f))
    name = next(k for k in sorted(tensors) if k.endswith("mlp.down_proj.weight"))
    t = tensors[name].copy()
    t.flat[7] = value
    tensors[name] = t
    save_file(tensors, str(f))
    return name


def test_nan_in_a_weight(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    name = _damage_tensor(d, float("nan"))
    p, out = _compare(d, tmp_path)
    line = assert_clean(p, "non-finite values", out=out)
    assert name in line


def test_inf_in_a_weight(tmp_path, tiny_llama):
    d = private_copy(tiny_llama, tmp_path)
    name = _damage_tensor(d, float("inf"))
    p, out = _compare(d, tmp_path)
    assert name in assert_clean(p, "non-finite values", out=out)
