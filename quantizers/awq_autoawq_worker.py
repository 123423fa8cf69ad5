"""Runs INSIDE the AutoAWQ environment (transformers 4.51): quantize one FP16 folder with AutoAWQ.

Invoked by quantizers/awq.py as a subprocess; prints one JSON line (prefixed RESULT) at the end.

CPU fix: AutoAWQ 0.2.9's scale search snapshots the block's weights with
`{k: v.cpu() for k, v in module.state_dict().items()}`. On a GPU `.cpu()` copies; on a CPU it
returns the same tensor, so the in-place `fc.weight.mul_(scales)` of the first grid point also
writes into the "snapshot". Every later `load_state_dict(snapshot)` then restores W * s0 instead
of W, the search compares the wrong candidates, and the block keeps an uncompensated per-channel
scale s0 = 1 / w_mean: the model is broken before any rounding happens. Random-weight models
hide it because their w_mean is nearly flat (s0 ~ 1). We make the snapshot a real copy.
On a GPU `.cpu()` copies, so the patch is applied on CPU only.

Config fix: checkpoints saved by transformers 5 keep RoPE's base in `rope_parameters`; transformers
4.51 does not read that key and silently falls back to rope_theta = 10000, so AutoAWQ would
calibrate (and save) a model with the wrong positional encoding. The worker hands AutoAWQ a view of
the source whose config.json carries the 4.x keys (rope_theta, rope_scaling, torch_dtype).
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
from awq_fast_clip import patch_fast_clip  # noqa: E402
from hf_config_compat import legacy_view  # noqa: E402


def patch_cpu_snapshot_alias(quantizer_cls) -> None:
    """Make the scale search's weight snapshot a copy on CPU (see module docstring)."""
    original = quantizer_cls._compute_best_scale
    if getattr(original, "_qc_patched", False):
        return

    def _compute_best_scale(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs={}):
        real_state_dict = module2inspect.state_dict

        def copying_state_dict(*a, **kw):
            return {k: v.detach().clone() for k, v in real_state_dict(*a, **kw).items()}

        module2inspect.state_dict = copying_state_dict
        try:
            return original(self, x, w_mean, x_mean, module2inspect, linears2scale, fp16_output, kwargs)
        finally:
            del module2inspect.state_dict

    _compute_best_scale._qc_patched = True
    quantizer_cls._compute_best_scale = _compute_best_scale


def calibration_token_ids(tokenizer_json: Path, calib_file: Path, n: int, max_len: int) -> list[list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    texts = []
    for line in calib_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        texts.append(json.loads(line)["text"] if line.startswith("{") else line)
    out = []
    for t in texts:
        ids = tok.encode(t.strip(), add_special_tokens=False).ids
        if 0 < len(ids) <= max_len:
            out.append(ids)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--recipe", required=True, help="JSON: w_bit, q_group_size, zero_point, version, calib_samples, calib_seq_len")
    ap.add_argument("--calib", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu: calibrate in float32; cuda: AutoAWQ's GPU path in float16")
    ap.add_argument("--scale-only", action="store_true", help="apply AWQ scales only (export_compatible, no clip): a no-op on the model's function")
    ap.add_argument("--no-cpu-fix", action="store_true", help="run AutoAWQ unpatched (to reproduce the CPU bug)")
    ap.add_argument("--slow-clip", action="store_true", help="AutoAWQ's own clip search (broadcast products; 30x slower on CPU)")
    args = ap.parse_args()

    import torch
    import transformers
    import awq
    from awq import AutoAWQForCausalLM
    from awq.quantize.quantizer import AwqQuantizer

    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = json.loads(args.recipe)
    config = json.loads((args.source / "config.json").read_text())
    group, group_note = choose_group_size(config, int(recipe["q_group_size"]))
    on_cpu = args.device == "cpu"
    if on_cpu and not args.no_cpu_fix:
        patch_cpu_snapshot_alias(AwqQuantizer)
    if not args.slow_clip:
        patch_fast_clip(AwqQuantizer)  # same search as batched matmuls (quantizers/awq_fast_clip.py)
    if not on_cpu and not torch.cuda.is_available():
        print(f"ERROR --device {args.device}: no GPU visible to torch", file=sys.stderr)
        return 2

    t0 = time.time()
    view = args.out.parent / (args.out.name + ".source-view")
    config_changes = legacy_view(args.source, view)
    model = AutoAWQForCausalLM.from_pretrained(str(view), torch_dtype=torch.float32 if on_cpu else torch.float16,
                                               device_map=None)
    samples = calibration_token_ids(args.source / "tokenizer.json", args.calib, 10**9, int(recipe["calib_seq_len"]))
    quant_config = {
        "zero_point": bool(recipe["zero_point"]),
        "q_group_size": group,
        "w_bit": int(recipe["w_bit"]),
        "version": recipe["version"],
    }
    model.quantize(
        None,
        quant_config=quant_config,
        calib_data=samples,
        max_calib_samples=int(recipe["calib_samples"]),
        max_calib_seq_len=int(recipe["calib_seq_len"]),
        export_compatible=args.scale_only,
        apply_clip=not args.scale_only,
    )
    shutil.rmtree(view, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    # Calibrated in float32 on CPU; the checkpoint keeps its unquantized tensors in float16, as AWQ checkpoints do.
    model.model.half()
    if args.scale_only:
        model.model.save_pretrained(str(args.out))
    else:
        model.save_quantized(str(args.out))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"):
        if (args.source / name).exists():
            shutil.copy2(args.source / name, args.out / name)
    result = {
        "group_size": group,
        "group_size_note": group_note,
        "quant_config": quant_config,
        "calib_blocks": int(recipe["calib_samples"]),
        "cpu_snapshot_fix": on_cpu and not args.no_cpu_fix,
        "fast_clip": not args.slow_clip,
        "device": args.device,
        "config_for_transformers_4": config_changes,
        "scale_only": args.scale_only,
        "seconds": round(time.time() - t0, 2),
        "versions": {
            "autoawq": awq.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
