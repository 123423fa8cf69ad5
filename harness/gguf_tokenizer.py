"""Rebuild a clean HF tokenizer (byte-level BPE) from a GGUF file's `gpt2` vocabulary.

transformers' GGUF loader turns a `gpt2`-type GGUF vocabulary into a hybrid tokenizer.json
(BPE with byte fallback and SentencePiece decoders) that llama.cpp's own converter then
mistakes for a SentencePiece vocabulary. For the embedded default model we write the
tokenizer the original checkpoint had: byte-level BPE with the GGUF's vocab and merges."""
from __future__ import annotations

from pathlib import Path

# Pre-tokenizers by the GGUF's tokenizer.ggml.pre; only those we ship a model for.
_PRE = {"smollm": "digits+bytelevel", "default": "bytelevel"}


def write_bpe_tokenizer(gguf_path: Path, out_dir: Path) -> None:
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    fields = GGUFReader(str(gguf_path)).fields

    def get(key, default=None):
        f = fields.get(key)
        return f.contents() if f is not None else default

    if get("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"{gguf_path.name}: tokenizer model {get('tokenizer.ggml.model')!r} is not gpt2 BPE")
    tokens: list[str] = get("tokenizer.ggml.tokens")
    types: list[int] = get("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in get("tokenizer.ggml.merges")]
    pre = _PRE.get(get("tokenizer.ggml.pre", "default"))
    if pre is None:
        raise ValueError(f"{gguf_path.name}: unsupported pre-tokenizer {get('tokenizer.ggml.pre')!r}")

    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tk.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if pre == "digits+bytelevel" else byte_level
    )
    tk.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tk.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    control = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
    tk.add_special_tokens(control)

    def tok(key):
        i = get(key)
        return tokens[int(i)] if i is not None else None

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=tok("tokenizer.ggml.bos_token_id"),
        eos_token=tok("tokenizer.ggml.eos_token_id"),
        unk_token=tok("tokenizer.ggml.unknown_token_id"),
        pad_token=tok("tokenizer.ggml.padding_token_id"),
        clean_up_tokenization_spaces=False,
        add_bos_token=bool(get("tokenizer.ggml.add_bos_token", False)),
    )
    template = get("tokenizer.chat_template")
    if template:
        fast.chat_template = template
    fast.save_pretrained(out_dir)
