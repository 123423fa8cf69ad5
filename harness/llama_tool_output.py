"""What llama.cpp's own tools print (llama-perplexity, its --kl-divergence statistics, llama-bench -o json),
read into the harness's units, and the harness's figures computed the same way for comparison."""
from __future__ import annotations

import json
import re

from core.errors import UserError


def _float(pattern: str, text: str, what: str) -> float:
    m = re.search(pattern, text)
    if not m:
        raise UserError(f"could not read {what} from llama.cpp's output")
    return float(m.group(1))


_STAMP = r"(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) I "


def _seconds(m: re.Match) -> float:
    return int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 1e3 + int(m.group(4)) / 1e6


def parse_perplexity(text: str) -> dict:
    """Final PPL, and the throughput of the whole pass: chunks × n_ctx over the time between the log's
    "calculating perplexity" and "Final estimate" stamps (model evaluation plus llama-perplexity's own
    log-softmax work, as the harness's pass includes its own)."""
    ppl = _float(r"Final estimate: PPL = ([0-9.]+)", text, "the final PPL")
    start = re.search(_STAMP + r"perplexity: calculating perplexity over (\d+) chunks, n_ctx=(\d+)", text)
    end = re.search(_STAMP + r"Final estimate", text)
    if not start or not end:
        raise UserError("could not read the pass timing from llama-perplexity's log")
    tokens = int(start.group(5)) * int(start.group(6))
    return {"ppl": ppl, "tok_s": tokens / (_seconds(end) - _seconds(start)), "pass_s": _seconds(end) - _seconds(start)}


_NUM = r"(-?[0-9.]+(?:[eE][+-]?[0-9]+)?)"


def parse_kld(text: str) -> dict:
    """llama-perplexity --kl-divergence's statistics, in the harness's units (fractions, not %)."""
    out = {
        "kld_mean": _float(r"Mean\s+KLD:\s+" + _NUM, text, "mean KLD"),
        "kld_median": _float(r"Median\s+KLD:\s+" + _NUM, text, "median KLD"),
        "kld_p90": _float(r"90\.0%\s+KLD:\s+" + _NUM, text, "KLD p90"),
        "kld_p99": _float(r"99\.0%\s+KLD:\s+" + _NUM, text, "KLD p99"),
        "kld_p999": _float(r"99\.9%\s+KLD:\s+" + _NUM, text, "KLD p99.9"),
        "kld_max": _float(r"Maximum KLD:\s+" + _NUM, text, "maximum KLD"),
        "top1_agreement": _float(r"Same top p:\s+" + _NUM, text, "same top p") / 100.0,
        "delta_p_mean": _float(r"Mean\s+Δp:\s+" + _NUM, text, "mean Δp") / 100.0,
        "delta_p_rms": _float(r"RMS Δp\s*:\s+" + _NUM, text, "RMS Δp") / 100.0,
        "delta_p_p1": _float(r" 1\.0%\s+Δp:\s+" + _NUM, text, "Δp p1") / 100.0,
        "delta_p_p99": _float(r"99\.0%\s+Δp:\s+" + _NUM, text, "Δp p99") / 100.0,
        "cor_ln_ppl": _float(r"Cor\(ln\(PPL\(Q\)\), ln\(PPL\(base\)\)\):\s+" + _NUM, text, "Cor(ln PPL)") / 100.0,
        "ppl_q": _float(r"Mean PPL\(Q\)\s*:\s*" + _NUM, text, "PPL(Q)"),
    }
    out["same_top_pct"] = 100.0 * out["top1_agreement"]
    return out


# harness vs llama-perplexity --kl-divergence: these must agree within KLD_AGREE_PCT (relative); the Δp
# figures and the correlation are compared and reported, not held to it (Δp's mean is a small difference
# of probabilities, whose relative error means little)
KLD_AGREED = ("kld_mean", "kld_median", "kld_p99", "kld_p999", "kld_max", "top1_agreement")
KLD_REPORTED = ("kld_p90", "delta_p_mean", "delta_p_rms", "delta_p_p1", "delta_p_p99", "cor_ln_ppl")
KLD_AGREE_PCT = 2.0


def harness_kld_stats(kld_cell: dict, base_cell: dict) -> dict:
    """The same statistics from the harness's cells, through harness/metrics (the report's definitions)."""
    import numpy as np

    from harness import metrics
    from harness.evidence import CellEvidence

    cell, base = CellEvidence("gguf-q4_k_m", "llama.cpp", "ok"), CellEvidence("gguf-f16", "llama.cpp", "ok")
    cell.kld_tokens = np.asarray(kld_cell["kld"]["per_token"], dtype=np.float64)
    cell.top1_window = np.asarray(kld_cell["kld"]["top1_per_window"])
    cell.window_nll, base.window_nll = np.asarray(kld_cell["window_nll"]), np.asarray(base_cell["window_nll"])
    cell.nll_tokens = np.asarray(kld_cell["nll_per_token"], dtype=np.float64)
    base.nll_tokens = np.asarray(base_cell["nll_per_token"], dtype=np.float64)
    est = metrics.estimate_all(cell, base)
    return {m: est[m].value for m in (*KLD_AGREED, *KLD_REPORTED) if m in est}


def parse_llama_bench(text: str) -> dict:
    """llama-bench -o json: avg tokens/s per test (pp512, tg128)."""
    start = text.index("[")
    rows = json.loads(text[start:text.rindex("]") + 1])
    out = {}
    for r in rows:
        if r.get("n_prompt") and not r.get("n_gen"):
            out["pp"] = {"n": r["n_prompt"], "tok_s": r["avg_ts"], "stddev": r.get("stddev_ts")}
        elif r.get("n_gen") and not r.get("n_prompt"):
            out["tg"] = {"n": r["n_gen"], "tok_s": r["avg_ts"], "stddev": r.get("stddev_ts")}
    return out
