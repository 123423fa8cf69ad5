from dataclasses import replace
from pathlib import Path

from harness.cells import cell_key
from harness.config import AwqRecipe
from quantizers.base import BuildContext, Manifest
from quantizers.fp16 import Fp16Quantizer
from quantizers.gguf import GgufQ4KMQuantizer


class _Src:
    sha256 = "a" * 64


def _ctx(src=_Src(), upstream=None):
    return BuildContext(source=src, upstream=upstream or {}, calibration=Path("x"), threads=2)


def _manifest(key):
    return Manifest("gguf-f16", "gguf", "m.gguf", "t", {}, {}, "s", key, 0.0, 1)


def test_quantizer_key_depends_on_source_recipe_tools_and_upstream(monkeypatch):
    q = Fp16Quantizer()
    k1 = q.cache_key(_ctx())
    other = _Src()
    other.sha256 = "b" * 64
    assert q.cache_key(_ctx(other)) != k1
    assert q.cache_key(_ctx()) == k1  # deterministic
    monkeypatch.setattr(q, "tool_versions", lambda: {"safetensors": "0.0-other"})
    assert q.cache_key(_ctx()) != k1
    g = GgufQ4KMQuantizer()
    monkeypatch.setattr(g, "tool_versions", lambda: {"llama_cpp_python": "x"})
    a = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k1"))}))
    b = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k2"))}))
    assert a != b


def test_cell_key_ignores_paths_but_not_settings():
    spec = {"variant": "fp16", "runtime": "transformers", "n_ctx": 512, "artifact": "/a", "windows": "/w", "reference_dir": "/r"}
    k = cell_key(spec, "art", "code")
    assert cell_key({**spec, "artifact": "/elsewhere", "windows": "/w2"}, "art", "code") == k
    assert cell_key({**spec, "n_ctx": 256}, "art", "code") != k
    assert cell_key(spec, "art2", "code") != k
    assert cell_key(spec, "art", "code2") != k


def test_awq_recipe_changes_key():
    assert AwqRecipe().as_dict() != replace(AwqRecipe(), q_group_size=64).as_dict()
