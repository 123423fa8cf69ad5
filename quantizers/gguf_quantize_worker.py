"""Subprocess: quantize a GGUF with llama.cpp's llama_model_quantize (what llama-quantize calls)."""
from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    src, dst, ftype_name, threads = argv[1], argv[2], argv[3], int(argv[4])
    import llama_cpp

    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype_name.upper()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        print(f"llama_model_quantize returned {rc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
