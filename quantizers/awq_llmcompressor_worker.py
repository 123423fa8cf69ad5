"""Runs INSIDE the llm-compressor environment: AWQ with llm-compressor's AWQModifier on CPU.

Prints one JSON line (prefixed RESULT) at the end. On a machine without an accelerator,
llm-compressor's activation cache calls `Tensor.pin_memory()`, which raises "Cannot access
accelerator device when none is available"; pinning is pointless there, so it becomes a no-op.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from awq_groups import choose_group_size  # noqa: E402
from awq_autoawq_worker import calibration_token_ids  # noqa: E402  (pure-python helper)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--calib", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu: float32; cuda: float16 on the GPU")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if not torch.cuda.is_available():
        torch.Tensor.pin_memory = lambda self, *a, **k: self  # type: ignore[method-assign]
    import compressed_tensors
    import llmcompressor
    import transformers
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.awq import AWQModifier
    from transformers import AutoModelForCausalLM

    recipe = json.loads(args.recipe)
    config = json.loads((args.source / "config.json").read_text())
    group, note = choose_group_size(config, int(recipe["q_group_size"]))
    seq_len, n = int(recipe["calib_seq_len"]), int(recipe["calib_samples"])
    samples = calibration_token_ids(args.source / "tokenizer.json", args.calib, n, seq_len)[:n]
    ds = Dataset.from_dict({"input_ids": samples, "attention_mask": [[1] * len(s) for s in samples]})
    t0 = time.time()
    on_cpu = args.device == "cpu"
    model = AutoModelForCausalLM.from_pretrained(str(args.source), dtype=torch.float32 if on_cpu else torch.float16,
                                                 device_map=None if on_cpu else args.device)
    modifier = AWQModifier(
        ignore=["lm_head"],
        config_groups={
            "group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": int(recipe["w_bit"]), "type": "int", "symmetric": not recipe["zero_point"],
                            "strategy": "group", "group_size": group},
            }
        },
    )
    oneshot(model=model, dataset=ds, recipe=modifier, max_seq_length=seq_len, num_calibration_samples=len(samples))
    args.out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16)  # calibrated in float32 on CPU; stored like every AWQ checkpoint, in float16
    model.save_pretrained(str(args.out), save_compressed=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (args.source / name).exists():
            shutil.copy2(args.source / name, args.out / name)
    print("RESULT " + json.dumps({
        "group_size": group, "group_size_note": note, "seconds": round(time.time() - t0, 2),
        "versions": {"llmcompressor": llmcompressor.__version__, "compressed-tensors": compressed_tensors.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
