"""Flag broken variants and runtime disagreements, loudly: PPL far above fp16's, non-finite logits, a compiled
decode that left the eager forward."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BROKEN_PPL_RATIO = 1.5  # a variant whose PPL is 50% above fp16's is broken, not "lossy"
WARN_PPL_RATIO = 1.25
FORMAT_TOLERANCE = 0.005  # a variant with fp16's weights (gguf-f16) must agree with it within 0.5%
# a compiled decode step computes the eager forward's function: its logits within 5% of the mean |logit|
# (fused kernels only round differently; a wrong cache position or mask lands as far off as other tokens)
DECODE_CHECK_MAX_REL = 0.05


@dataclass
class Flag:
    level: str  # "broken" | "error" | "warning"
    variant: str
    runtime: str | None
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def check_cells(ppl: dict[tuple[str, str], float], reference: tuple[str, str] | None,
                failed: dict[tuple[str, str], str], variant_errors: dict[str, str],
                same_weights: tuple[str, ...] = ()) -> list[Flag]:
    """`same_weights`: variants that hold the reference's weights (gguf-f16): they must match its PPL."""
    flags: list[Flag] = []
    for v, err in variant_errors.items():
        flags.append(Flag("error", v, None, f"variant could not be built: {err}"))
    for (v, r), err in failed.items():
        flags.append(Flag("error", v, r, f"evaluation failed: {err}"))
    for (v, r), p in ppl.items():
        if not math.isfinite(p):
            flags.append(Flag("broken", v, r, "BROKEN: perplexity is not finite"))
    if reference is None or reference not in ppl:
        return flags
    ref = ppl[reference]
    for (v, r), p in ppl.items():
        if (v, r) == reference or not math.isfinite(p):
            continue
        ratio = p / ref
        if v in same_weights:
            if abs(ratio - 1) > FORMAT_TOLERANCE:
                flags.append(Flag("warning", v, r, f"same weights as fp16 but PPL differs by {100 * (ratio - 1):+.2f}% "
                                                   f"(> {100 * FORMAT_TOLERANCE:.1f}%): runtime or conversion mismatch"))
            continue
        if ratio > BROKEN_PPL_RATIO:
            flags.append(Flag("broken", v, r, f"BROKEN: PPL {p:.4g} is {ratio:.2f}x fp16's {ref:.4g} "
                                              f"(limit {BROKEN_PPL_RATIO}x); not reported as a result"))
        elif ratio > WARN_PPL_RATIO:
            flags.append(Flag("warning", v, r, f"PPL {100 * (ratio - 1):+.1f}% vs fp16 (more than {100 * (WARN_PPL_RATIO - 1):.0f}%)"))
    return flags


def decode_check_flags(cell_docs: list[dict]) -> list[Flag]:
    """A compiled decode step whose logits left the eager forward's is broken: its speed is no result."""
    flags = []
    for d in cell_docs:
        for key, when in (("decode_check", ""), ("decode_check_after_batches", " after the larger batches ran")):
            c = d.get(key)
            if c and not c["rel_mean_err"] <= DECODE_CHECK_MAX_REL:
                flags.append(Flag("broken", d["variant"], d["runtime"],
                                  f"BROKEN COMPILED DECODE{when.upper()}: its logits differ from the eager forward on "
                                  f"the same tokens by {100 * c['rel_mean_err']:.1f}% of the mean |logit| (limit "
                                  f"{100 * DECODE_CHECK_MAX_REL:.0f}%); its speed is not a result"))
                break
    return flags


def nonfinite_flags(cells) -> list[Flag]:
    """A runtime whose logits were NaN or infinite at any scored position computed no distribution there:
    the variant is broken, whatever its other figures say."""
    flags = []
    for c in cells:
        n = int(c.result.get("nonfinite_positions") or 0)
        if n:
            total = c.result.get("scored_tokens")
            of = f" of {total:,}" if isinstance(total, int) else ""
            flags.append(Flag("broken", c.variant, c.runtime,
                              f"BROKEN: its logits are not finite (NaN or Inf) at {n:,}{of} scored positions"))
    return flags
