from dataclasses import replace
from pathlib import Path

from harness.cell_launcher import cell_key
from core.settings import AwqRecipe
from quantizers.base import BuildContext, Manifest
from quantizers.fp16 import Fp16Quantizer
from quantizers.gguf import GgufTypeQuantizer
from quantizers.registry import make_quantizers


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
    g = GgufTypeQuantizer("q4_k_m")
    monkeypatch.setattr(g, "tool_versions", lambda: {"llama_cpp_python": "x"})
    a = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k1"))}))
    b = g.cache_key(_ctx(upstream={"gguf-f16": (Path("."), _manifest("k2"))}))
    assert a != b


def test_cell_key_ignores_paths_but_not_settings():
    from dataclasses import fields

    from core.cellspec import CellSpec

    spec = CellSpec(variant="fp16", runtime="transformers", n_ctx=512, artifact="/a", windows="/w", reference_dir="/r")
    k = cell_key(spec, "art", "code")
    assert cell_key(spec.with_(artifact="/elsewhere", windows="/w2", reference_dir="/r2"), "art", "code") == k
    assert cell_key(spec.with_(n_ctx=256), "art", "code") != k
    assert cell_key(spec.with_(options={"flash_attn": "on"}), "art", "code") != k
    assert cell_key(spec, "art2", "code") != k
    # every field says whether it is keyed, and the paths are not
    unkeyed = {f.name for f in fields(CellSpec) if not f.metadata["key"]}
    assert {"artifact", "windows", "reference_dir", "task_requests", "tokenizer_dir", "hf_config_dir"} <= unkeyed
    assert {"variant", "runtime", "n_ctx", "kld_top_k", "options", "windows_sha256", "device"} <= set(spec.cache_fields())
    assert cell_key(spec, "art", "code2") != k


def test_awq_recipe_changes_key():
    assert AwqRecipe().as_dict() != replace(AwqRecipe(), q_group_size=64).as_dict()


def test_gguf_variant_names_and_build_order():
    import quantizers  # noqa: F401  (registers the variants)
    from core.registry import is_variant
    from quantizers.gguf import parse_gguf_variant

    assert parse_gguf_variant("gguf-q2_k-imatrix") == ("q2_k", True)
    assert parse_gguf_variant("gguf-q8_0") == ("q8_0", False)
    assert parse_gguf_variant("gguf-iq2_xs") is None  # i-quants need an importance matrix
    assert parse_gguf_variant("gguf-q4_k_x") is None and not is_variant("gguf-q4_k_x")
    names = [q.variant for q in make_quantizers(("gguf-q2_k-imatrix", "gguf-q8_0"), AwqRecipe())]
    assert names == ["fp16", "gguf-f16", "gguf-imatrix", "gguf-q2_k-imatrix", "gguf-q8_0"]


def test_imatrix_variant_key_follows_the_imatrix(monkeypatch):
    q = GgufTypeQuantizer("q2_k", imatrix=True)
    monkeypatch.setattr(q, "tool_versions", lambda: {"llama_cpp_python": "x"})
    im1 = Manifest("gguf-imatrix", "imatrix", "imatrix.gguf", "t", {}, {"sha256": "1"}, "s", "i1", 0.0, 1)
    im2 = Manifest("gguf-imatrix", "imatrix", "imatrix.gguf", "t", {}, {"sha256": "2"}, "s", "i2", 0.0, 1)
    up = {"gguf-f16": (Path("."), _manifest("k1"))}
    a = q.cache_key(_ctx(upstream={**up, "gguf-imatrix": (Path("."), im1)}))
    b = q.cache_key(_ctx(upstream={**up, "gguf-imatrix": (Path("."), im2)}))
    assert a != b
