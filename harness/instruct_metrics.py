"""The instruction-following quantities (harness/instructions.py judges each answer), defined once like every
other quantity (harness.metrics.Quantity) and estimated with its bootstrap over prompts:

- prompt-level strict and loose accuracy (IFEval's headline figures): the share of prompts whose every instruction
  was followed, as written (strict) or after IFEval's loose clean-ups;
- instruction-level strict accuracy: followed instructions over all instructions (a ratio over prompts);
- the drops from fp16 × transformers, in points, paired by prompt: fp16's outcome minus this cell's on the same
  prompt."""
from __future__ import annotations

import numpy as np

from evaluators.stats import wmean
from harness.metrics import NotMeasured, Quantity

P = "instruction prompts"


def _outcomes(cell, what: str) -> np.ndarray:
    got = None if cell is None else getattr(cell, what)
    if got is None:
        raise NotMeasured(getattr(cell, "if_problem", None) or f"instruction following of {getattr(cell, 'variant', '?')} × {getattr(cell, 'runtime', '?')} "
                          "was not measured")
    return got


def _pair(cell, ref, what: str):
    a, r = _outcomes(cell, what), _outcomes(ref, what)
    if a.shape != r.shape:
        raise NotMeasured(f"{cell.variant} × {cell.runtime} answered {len(a)} instruction prompts, fp16 {len(r)}")
    return a, r


def _share(what: str):
    return lambda cell, _ref: (_outcomes(cell, what),)


def _drop(what: str):
    def data(cell, ref):
        a, r = _pair(cell, ref, what)
        return (r - a,)
    return data


def _inst(cell, _ref):
    return _outcomes(cell, "if_followed"), _outcomes(cell, "if_count")


_mean = lambda w, xs: wmean(xs[0], w)  # noqa: E731
_points = lambda w, xs: 100.0 * wmean(xs[0], w)  # noqa: E731

IF_STRICT = Quantity("if_prompt_strict", "instruction prompts fully followed, strict", "fraction", P,
                     _share("if_strict"), _mean, higher_is_worse=False)
IF_LOOSE = Quantity("if_prompt_loose", "instruction prompts fully followed, loose", "fraction", P,
                    _share("if_loose"), _mean, higher_is_worse=False)
IF_INST_STRICT = Quantity("if_instruction_strict", "instructions followed, strict", "fraction", P, _inst,
                          lambda w, xs: (w * xs[0]).sum(-1) / (w * xs[1]).sum(-1), higher_is_worse=False)
IF_STRICT_DROP = Quantity("if_prompt_strict_drop", "prompts fully followed (strict): fp16's share minus this cell's "
                          "(points)", "points", P, _drop("if_strict"), _points, paired=True)
IF_LOOSE_DROP = Quantity("if_prompt_loose_drop", "prompts fully followed (loose): fp16's share minus this cell's "
                         "(points)", "points", P, _drop("if_loose"), _points, paired=True)

INSTRUCT_QUANTITIES = (IF_STRICT, IF_LOOSE, IF_INST_STRICT, IF_STRICT_DROP, IF_LOOSE_DROP)
