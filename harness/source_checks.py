"""Checks a source folder passes before anything is built from it: not already quantized, no remote
code unless allowed, safetensors whose headers are whole and whose tensors match the config, and
pickle weights never unpickled unless the user says so (then loaded with torch's weights-only loader
and rewritten as safetensors)."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np

from core.errors import UserError


def check_config(cfg: dict, path: Path, trust_remote_code: bool) -> list[str]:
    """Refusals for what the config says; returns notes for what is accepted with a flag."""
    q = cfg.get("quantization_config")
    if q:
        method = q.get("quant_method", "unknown") if isinstance(q, dict) else "unknown"
        raise UserError(f"'{path}' is already quantized ({method}); give the FP16 (or BF16/FP32) model it was made "
                        "from: quantcompare makes the quantized variants itself")
    notes = []
    if cfg.get("auto_map"):
        if not trust_remote_code:
            raise UserError(f"'{path}' ships its own modelling code (auto_map in config.json), which quantcompare does "
                            "not run by default; pass --trust-remote-code to use transformers' built-in "
                            f"'{cfg.get('model_type')}' implementation with these weights")
        notes.append("the source ships remote code (auto_map); it was not run: transformers' built-in "
                      f"'{cfg.get('model_type')}' implementation read the weights (--trust-remote-code)")
    return notes


def read_headers(files: list[Path]) -> dict[str, dict]:
    """Every tensor's dtype, shape and byte range, from the safetensors headers; a file whose header
    is unreadable or whose data ends early is refused (a truncated download)."""
    tensors: dict[str, dict] = {}
    for f in files:
        size = f.stat().st_size
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > size - 8:
                    raise ValueError("header longer than the file")
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error, UnicodeDecodeError) as e:
            raise UserError(f"'{f}' is not a readable safetensors file ({e})") from None
        end = max((m["data_offsets"][1] for k, m in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise UserError(f"'{f}' is truncated: its header describes {8 + n + end:,} bytes, the file has {size:,} "
                            "(an interrupted download? fetch it again)")
        tensors.update({k: m for k, m in header.items() if k != "__metadata__"})
    return tensors


# bit masks of the exponent field per float dtype: all ones there is an Inf or a NaN
_EXPONENT = {"F16": (np.uint16, 0x7C00), "BF16": (np.uint16, 0x7F80), "F32": (np.uint32, 0x7F800000),
             "F64": (np.uint64, 0x7FF0000000000000)}


def check_finite(files: list[Path]) -> None:
    """Every float tensor holds only finite values (a corrupted fine-tune or a bad merge carries NaN/Inf, and
    every variant made from it would be measured as broken): one line naming the first bad tensor."""
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        data = np.memmap(f, dtype=np.uint8, mode="r", offset=8 + n)
        for name, meta in header.items():
            if name == "__metadata__" or meta.get("dtype") not in _EXPONENT:
                continue
            kind, mask = _EXPONENT[meta["dtype"]]
            a, b = meta["data_offsets"]
            bits = data[a:b].view(kind)
            bad = sum(int(np.count_nonzero((bits[s:s + (1 << 24)] & kind(mask)) == kind(mask)))
                      for s in range(0, len(bits), 1 << 24))  # bounded temporaries on large tensors
            if bad:
                raise UserError(f"'{f.name}': tensor {name} holds {bad:,} non-finite values (NaN or Inf): a corrupted "
                                "checkpoint; give weights that are all finite")
        del data


def check_shapes(cfg: dict, tensors: dict[str, dict], path: Path) -> None:
    """The weights must be the model the config describes (embedding size, hidden size, layer count)."""
    emb = next((m for k, m in tensors.items() if k.endswith("embed_tokens.weight")), None)
    if emb is None:
        raise UserError(f"'{path}': no embedding tensor (model.embed_tokens.weight) among the weights")
    vocab, hidden = cfg.get("vocab_size"), cfg.get("hidden_size")
    if list(emb["shape"]) != [vocab, hidden]:
        raise UserError(f"'{path}': the weights do not match config.json (embedding {emb['shape']}, config says "
                        f"vocab_size {vocab} x hidden_size {hidden})")
    layers = {int(k.split(".layers.")[1].split(".")[0]) for k in tensors if ".layers." in k}
    want = cfg.get("num_hidden_layers")
    if layers and want is not None and len(layers) != want:
        raise UserError(f"'{path}': the weights hold {len(layers)} layers, config.json says num_hidden_layers {want}")


def convert_pickle(path: Path, dest: Path, progress=print) -> Path:
    """pytorch_model*.bin -> model.safetensors, loaded with torch.load(weights_only=True) (no arbitrary
    code), into `dest` beside copies of the config and tokenizer files; reused when present."""
    if (dest / "model.safetensors").is_file():
        return dest
    import torch
    from safetensors.torch import save_file

    progress(f"[source] converting pickle weights of {path.name} to safetensors (weights-only loader)")
    state = {}
    import warnings

    for f in sorted(path.glob("pytorch_model*.bin")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                state.update(torch.load(f, map_location="cpu", weights_only=True))
        except Exception:  # the weights-only unpickler refuses anything but tensors and plain containers
            raise UserError(f"'{f}' holds more than tensors, so the weights-only loader refused it (it would run code "
                            "if unpickled); get safetensors weights for this model") from None
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seen, out = {}, {}
    for k, t in state.items():  # tied tensors are stored once
        key = (t.data_ptr(), t.shape)
        out[k] = t.clone() if key in seen else t.contiguous()
        seen[key] = k
    save_file(out, str(tmp / "model.safetensors"))
    for f in path.iterdir():
        if f.is_file() and not f.name.endswith((".bin", ".safetensors")) and f.name != "pytorch_model.bin.index.json":
            shutil.copy2(f, tmp / f.name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
