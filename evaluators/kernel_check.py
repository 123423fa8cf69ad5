"""Speed of a wrong kernel is worthless: before its speed is reported, each quantized runtime's logits
are compared with an exact dequantized reference of the same weights on the same device
(transformers with the weights dequantized: AWQ by our GEMM unpacking, GGUF by gguf-py).
The cells that produce those logits are planned by harness/cell_plan.py."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from core.names import QUANTIZED_FORMATS, REFERENCE_RUNTIME, REFERENCE_VARIANT
from core.registry import KernelTolerance

# "The kernel computes the function of its own weights": logits' mean abs error relative to the
# reference's mean |logit| is either small outright (MAX_REL_MEAN_ERR) or small against what the
# quantization itself did to the same logits (the dequantized reference against fp16's), since a kernel
# that reads its weights wrong (layout, scales, zero-points) lands about as far from them as other
# weights do (ratio ~1 or more), while correct lower-precision arithmetic, such as llama.cpp's 8-bit
# activations in its integer matmuls, adds rounding that grows with depth. Measured for llama.cpp's Q4_K
# kernels: 1.5% off on a 2-layer random model (weights vs fp16's: 14%; ratio 0.11); 3.4% off on
# SmolLM2-135M's real weights on a CPU (10.8%; ratio 0.31); 9.6% off on the 36-layer Qwen3-4B shape with
# random weights on an H100 (53.9%; ratio 0.18), where its CPU build is 9.5% off too. A subtle bug whose
# error is as small as rounding would pass: this catches kernels that compute other weights.
# Plus top-1 agreement where the reference has a clear leader. The limits are each quantizer's
# (core.registry.KernelTolerance; its defaults are the values measured above).
MIN_CLEAR_POSITIONS = 20


def compare_logits(test: np.ndarray, ref: np.ndarray) -> dict:
    test, ref = test.astype(np.float64), ref.astype(np.float64)
    err = np.abs(test - ref)
    scale = float(np.abs(ref).mean())
    top1 = float((test.argmax(-1) == ref.argmax(-1)).mean())
    # positions where the reference's top-1 leads its runner-up clearly (1 logit): a random-weight
    # model's logits are nearly flat, and ties there say nothing about the kernel
    part = np.sort(ref, axis=-1)[:, -2:]
    clear = (part[:, 1] - part[:, 0]) > 1.0
    top1_clear = float((test.argmax(-1) == ref.argmax(-1))[clear].mean()) if clear.any() else None
    return {"positions": int(ref.shape[0]), "max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()),
            "ref_mean_abs_logit": scale, "rel_mean_err": float(err.mean()) / scale if scale else None,
            "top1_agreement": top1, "top1_agreement_clear": top1_clear, "clear_positions": int(clear.sum())}


def verdict(c: dict, quant_effect: float | None, tol: KernelTolerance = KernelTolerance()) -> tuple[bool, str]:
    """Whether a kernel check passes, and by which rule (see the limits above)."""
    rel = c["rel_mean_err"]
    top_ok = c["clear_positions"] < MIN_CLEAR_POSITIONS or c["top1_agreement_clear"] >= tol.min_top1
    if rel is None or not top_ok:
        return False, "top-1 disagrees where the reference has a clear leader"
    if rel <= tol.max_rel_mean_err:
        return True, f"within {100 * tol.max_rel_mean_err:.0f}% of the mean |logit|"
    if quant_effect and rel / quant_effect <= tol.max_err_ratio:
        return True, (f"{rel / quant_effect:.2f} of the quantization's own effect ({100 * quant_effect:.1f}%): "
                      "rounding of the kernel's arithmetic, not other weights")
    return False, "as far from its weights' reference as other weights would be"


def kernel_checks(cell_docs: list[dict], manifests: dict, work: Path,
                  tolerances: dict[str, KernelTolerance] | None = None) -> list[dict]:
    """Compare every measured quantized cell with its variant's dequantized reference cell; a failed
    check carries the message the run flags it with ("ok" False, "message")."""
    tolerances = tolerances or {}
    folder = work / "kernel-check"
    checks = []
    ok_cells = {(d["variant"], d["runtime"]) for d in cell_docs if d["status"] == "ok"}
    fp16_file = folder / f"{REFERENCE_VARIANT}__{REFERENCE_RUNTIME}.npy"
    for v, m in manifests.items():
        fmt = m["format"] if isinstance(m, dict) else m.format
        if fmt not in QUANTIZED_FORMATS:
            continue
        ref_file = folder / f"{v}__{REFERENCE_RUNTIME}.npy"
        quant_effect = None
        if ref_file.is_file() and fp16_file.is_file():
            quant_effect = compare_logits(np.load(ref_file), np.load(fp16_file))["rel_mean_err"]
        for (cv, rt) in sorted(ok_cells):
            if cv != v or rt == REFERENCE_RUNTIME:
                continue
            test_file = folder / f"{v}__{rt}.npy"
            if not ref_file.is_file() or not test_file.is_file():
                continue
            c = compare_logits(np.load(test_file), np.load(ref_file))
            tol = tolerances.get(v, KernelTolerance())
            ok, rule = verdict(c, quant_effect, tol)
            top = c["top1_agreement_clear"] if c["clear_positions"] >= MIN_CLEAR_POSITIONS else c["top1_agreement"]
            c.update({"variant": v, "runtime": rt, "reference": f"{v} × {REFERENCE_RUNTIME} (dequantized weights)",
                      "quantization_rel_err": quant_effect,
                      "err_ratio": (c["rel_mean_err"] / quant_effect) if quant_effect and c["rel_mean_err"] is not None else None,
                      "ok": ok, "rule": rule, "tolerance": asdict(tol)})
            if not ok:
                c["message"] = (f"BROKEN KERNEL: logits differ from the dequantized reference (mean abs err "
                                f"{c['mean_abs_err']:.3g}, {100 * (c['rel_mean_err'] or 0):.1f}% of the mean |logit|; "
                                f"top-1 {100 * top:.1f}%: {rule}); its speed is not a result")
            checks.append(c)
    return checks
