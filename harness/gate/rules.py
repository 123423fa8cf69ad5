"""Apply a policy to one results.json (and, optionally, a baseline results.json): one Decision per
(cell, limit). Every quality estimate and interval comes from harness.metrics, the definitions the report
uses: a bootstrap over the units both sides share (windows resampled by article, documents)."""
from __future__ import annotations

from harness import generation_metrics as GM
from harness import instruct_metrics as IM
from harness import long_metrics as LM
from harness import metrics as M
from core.names import REFERENCE_VARIANT, variant_key
from harness.evidence import CellEvidence, clusters, collect, reference
from harness.gate.coverage_record import interval_coverage
from harness.gate.decision import Decision, decide
from harness.gate.policy import BASELINE_LIMITS, LIMITS, PER_TASK, Policy
from core.errors import UserError
from harness.metrics import NotMeasured
from evaluators.stats import Bootstrap

# policy key -> the window quantity it bounds
OWN = {"max_ppl_increase_pct": M.PPL_INCREASE, "max_kld_mean": M.KLD_MEAN, "max_kld_median": M.KLD_MEDIAN,
       "max_kld_p90": M.KLD_P90, "max_kld_p99": M.KLD_P99,
       "min_top1_agreement": M.TOP1, "max_delta_p_rms": M.DELTA_P_RMS, "min_cor_ln_ppl": M.COR_LN_PPL,
       "max_loop_rate_increase": GM.LOOP_RATE_INCREASE, "max_degenerate_rate_increase": GM.DEGENERATE_RATE_INCREASE,
       "min_identical_at_32": GM.IDENTICAL_AT[32], "min_median_tokens_to_divergence": GM.MEDIAN_DIVERGENCE,
       "max_if_strict_drop_points": IM.IF_STRICT_DROP, "max_if_loose_drop_points": IM.IF_LOOSE_DROP}
# policy key -> the long-window quantity it bounds, made for the cell's longest window (harness/long_metrics.py)
LONG = {"max_long_kld_mean_late": lambda cell: LM.late_kld_mean(cell.long_ctx),
        "max_long_ppl_increase_pct_late": lambda cell: LM.ppl_increase_at(len(LM.bucket_names(cell.long_ctx)) - 1,
                                                                          cell.long_ctx),
        "max_long_kld_rise": lambda cell: LM.KLD_RISE, "max_needle_accuracy_drop": lambda cell: LM.NEEDLE_DROP}
VS_BASELINE = {"max_ppl_increase_pct_points": M.PPL_INCREASE, "max_kld_mean_increase": M.KLD_MEAN,
               "max_kld_p99_increase": M.KLD_P99,
               "max_top1_agreement_drop": M.TOP1, "max_delta_p_rms_increase": M.DELTA_P_RMS}
KLD_QUANTITIES = (M.KLD_MEAN, M.KLD_MEDIAN, M.KLD_P90, M.KLD_P99, M.KLD_P999, M.KLD_MAX, M.TOP1)
EXACT = "exact (no sampling error)"
SPEED = "range of the timed runs (slowest against fastest)"


class Gate:
    def __init__(self, results: dict, policy: Policy, baseline: dict | None = None, paired_baseline: bool = True,
                 boot: Bootstrap | None = None) -> None:
        self.policy = policy
        self.boot = boot or Bootstrap(policy.seed, policy.resamples, policy.confidence)
        self.cells = collect(results)
        self.ref_key = reference(results)
        self.clusters = clusters(results)
        self.resampled_by = (results.get("windows") or {}).get("cluster_kind") or "window"
        # what a coverage record must have been studied at to hold for this run (harness/gate/coverage_record.py)
        self.settings = {"windows": (results.get("windows") or {}).get("n_windows"), "resampled_by": self.resampled_by,
                         "task_limit": ((results.get("run") or {}).get("tasks") or {}).get("limit")}
        self.variant_errors = results.get("variant_errors") or {}
        self.variant_key = variant_key(results)
        # variants with the reference's weights (speed-ups are taken against one of them on the same runtime)
        self.same_weights = tuple(results.get("same_weights_variants") or (REFERENCE_VARIANT, "gguf-f16"))
        self.base = collect(baseline) if baseline is not None else None
        self.base_ref_key = reference(baseline) if baseline is not None else None
        self.base_clusters = clusters(baseline) if baseline is not None else None
        self.paired_baseline = paired_baseline

    # -- helpers ---------------------------------------------------------------------------------
    def _ref(self, cells, ref_key, cell: CellEvidence, tasks: bool = False) -> CellEvidence:
        return M.task_reference(cells, cell, ref_key) if tasks else M.reference_cell(cells, ref_key)

    def _method(self, q, n: int, cell: CellEvidence, both: str = "") -> str:
        over = f"{q.over} by {self.resampled_by}" if q.over == "windows" else q.over
        text = f"{'paired ' if q.paired or q.over != 'prompts' else ''}bootstrap over {n} {over}{both}"
        if q in KLD_QUANTITIES and cell.kld_method:
            text += f"; KLD: {cell.kld_method}"
        return text

    def _row(self, cell, rule, metric, direction, limit, est, method, against) -> Decision:
        value, lo, hi = est
        dec, reason = decide(direction, float(limit), value, lo, hi)
        return Decision(cell.variant, cell.runtime, rule, metric, "<=" if direction == "max" else ">=", float(limit),
                        value, lo, hi, dec, reason, method, against,
                        interval_coverage(rule, {**self.settings, "kld_method": cell.kld_method}))

    def _fail(self, variant, runtime, rule, metric, direction, limit, reason, against="fp16") -> Decision:
        return Decision(variant, runtime, rule, metric, "<=" if direction == "max" else ">=",
                        None if isinstance(limit, dict) else float(limit), None, None, None, "fail", reason, "—", against)

    def _speedup(self, cells: dict, cell: CellEvidence) -> tuple[tuple[float, float, float], str]:
        for ref_variant in (REFERENCE_VARIANT, *[v for v in self.same_weights if v != REFERENCE_VARIANT]):
            ref = cells.get((ref_variant, cell.runtime))
            if ref is not None and ref.decode and ref is not cell:
                break
        else:
            raise NotMeasured(f"no fp16-weights cell with a decode speed on {cell.runtime}")
        if not cell.decode:
            raise NotMeasured(f"decode speed of {cell.variant} × {cell.runtime} was not measured")
        (v, vr), (r, rr) = cell.decode, ref.decode
        return (v / r, min(vr) / max(rr), max(vr) / min(rr)), f"{ref_variant} × {cell.runtime}"

    @staticmethod
    def _triple(e) -> tuple[float, float, float]:
        return e.value, e.ci_low, e.ci_high

    # -- rules -----------------------------------------------------------------------------------
    def _own(self, cell: CellEvidence, key: str, limit) -> list[Decision]:
        direction, metric = LIMITS[key]
        if key in OWN:
            q = OWN[key]
            ref = self._ref(self.cells, self.ref_key, cell)
            est = M.estimate(q, cell, ref, self.clusters, self.boot)
            return [self._row(cell, key, metric, direction, limit, self._triple(est), self._method(q, est.n, cell), "fp16")]
        if key in LONG:
            if cell.long_problem:
                raise NotMeasured(cell.long_problem)
            if not cell.long_ctx:
                raise NotMeasured(f"long windows of {cell.variant} × {cell.runtime} were not scored (--long-ctx 0?)")
            q = LONG[key](cell)
            ref = self._ref(self.cells, self.ref_key, cell)
            est = M.estimate(q, cell, ref, None, self.boot)
            return [self._row(cell, key, q.label, direction, limit, self._triple(est),
                              f"{'paired ' if q.paired else ''}bootstrap over {est.n} {q.over}", "fp16")]
        if key in PER_TASK:
            out = []
            ref = self._ref(self.cells, self.ref_key, cell, tasks=True)
            for selector, lim in limit.items():
                for task, m in M.outcome_metrics(cell, selector):
                    if key == "max_acc_drop_points":  # the report's change vs fp16, as points lost
                        est = M.scaled(M.task_delta(cell, ref, task, m, self.boot), -100.0)
                    else:
                        est = M.flip_rate(cell, ref, task, m, self.boot)
                    out.append(self._row(cell, f"{key}[{task}:{m}]", metric, direction, lim, self._triple(est),
                                         f"paired bootstrap over {est.n} documents", f"{ref.variant} × {ref.runtime}"))
            return out
        if key == "max_size_mb":
            if cell.size_bytes is None:
                raise NotMeasured("size was not recorded")
            s = cell.size_bytes / 1e6
            return [self._row(cell, key, metric, direction, limit, (s, s, s), EXACT, "—")]
        if key == "max_bits_per_weight":
            if cell.bits_per_weight is None:
                raise NotMeasured("bits per weight were not recorded")
            b = cell.bits_per_weight
            return [self._row(cell, key, metric, direction, limit, (b, b, b), EXACT, "—")]
        if key == "min_decode_speedup":
            est, against = self._speedup(self.cells, cell)
            return [self._row(cell, key, metric, direction, limit, est, SPEED, against)]
        raise ValueError(key)

    def _vs_baseline(self, cell: CellEvidence, key: str, limit) -> list[Decision]:
        direction, metric = BASELINE_LIMITS[key]
        bcell = self.base.get((cell.variant, cell.runtime))
        if bcell is None or bcell.status != "ok":
            raise NotMeasured(f"the baseline has no measured {cell.variant} × {cell.runtime}")
        if bcell.problem:
            raise NotMeasured(f"the baseline's {cell.variant} × {cell.runtime} is itself {bcell.problem}")
        rule, against = f"baseline.{key}", f"baseline {cell.variant} × {cell.runtime}"
        both = " of both runs" if self.paired_baseline else ""
        if key in VS_BASELINE:
            q = VS_BASELINE[key]
            cur = (cell, self._ref(self.cells, self.ref_key, cell))
            base = (bcell, self._ref(self.base, self.base_ref_key, bcell))
            est = M.change(q, cur, base, (self.clusters, self.base_clusters), self.paired_baseline, self.boot)
            method = (self._method(q, est.n, cell, both) if self.paired_baseline else
                      f"UNPAIRED bootstrap (each run's {q.over} resampled on its own)")
            return [self._row(cell, rule, metric, direction, limit, self._triple(est), method, against)]
        if key in PER_TASK:
            out = []
            cur_ref = self._ref(self.cells, self.ref_key, cell, tasks=True)
            base_ref = self._ref(self.base, self.base_ref_key, bcell, tasks=True)
            kind = "drop" if key == "max_acc_drop_points" else "flips"
            for selector, lim in limit.items():
                for task, m in M.outcome_metrics(cell, selector):
                    if self.paired_baseline and cell.tasks[task]["doc_id"] != (bcell.tasks.get(task) or {}).get("doc_id"):
                        raise UserError(f"the baseline scored other {task} documents: pass --unpaired-baseline "
                                        "to compare unpaired")
                    est = M.task_change(kind, (cell, cur_ref), (bcell, base_ref), task, m, self.paired_baseline, self.boot)
                    method = (f"paired bootstrap over {est.n} documents{both}" if self.paired_baseline else
                              "UNPAIRED bootstrap (each run's documents resampled on its own)")
                    out.append(self._row(cell, f"{rule}[{task}:{m}]", metric, direction, lim, self._triple(est), method,
                                         against))
            return out
        if key == "max_size_increase_pct":
            if cell.size_bytes is None or bcell.size_bytes is None:
                raise NotMeasured("size was not recorded")
            g = 100.0 * (cell.size_bytes / bcell.size_bytes - 1)
            return [self._row(cell, rule, metric, direction, limit, (g, g, g), EXACT, against)]
        if key == "max_bits_per_weight_increase":
            if cell.bits_per_weight is None or bcell.bits_per_weight is None:
                raise NotMeasured("bits per weight were not recorded")
            g = cell.bits_per_weight - bcell.bits_per_weight
            return [self._row(cell, rule, metric, direction, limit, (g, g, g), EXACT, against)]
        if key == "max_decode_speedup_drop":
            (c, clo, chi), _ = self._speedup(self.cells, cell)
            (b, blo, bhi), _ = self._speedup(self.base, bcell)
            return [self._row(cell, rule, metric, direction, limit, (b - c, blo - chi, bhi - clo), SPEED, against)]
        raise ValueError(key)

    # -- driver ----------------------------------------------------------------------------------
    def run(self) -> list[Decision]:
        out: list[Decision] = []
        measured = {v for (v, _) in self.cells} | set(self.variant_errors)
        for v in self.policy.literal_variants():
            if v not in measured:
                out.append(self._fail(v, None, "measured", "the variant was measured", "min", 1,
                                      "the policy names this variant; the run did not measure it"))
        for v, err in sorted(self.variant_errors.items(), key=lambda kv: self.variant_key(kv[0])):
            own, base = self.policy.limits_for(v)
            if own or base:
                out.append(self._fail(v, None, "built", "the variant was built", "min", 1, f"not built: {err}"))
        by_variant: dict[str, list[CellEvidence]] = {}
        for key, cell in self.cells.items():
            if key != self.ref_key:
                by_variant.setdefault(cell.variant, []).append(cell)
        for v in sorted(by_variant, key=self.variant_key):
            own, base = self.policy.limits_for(v)
            if not own and not base:
                continue
            cells = [c for c in by_variant[v] if c.status != "unsupported"]
            if not cells:
                out.append(self._fail(v, None, "measured", "a runtime measured the variant", "min", 1,
                                      "no runtime here could read this variant"))
            runtime_filter = own.get("decode_runtime")
            for cell in sorted(cells, key=lambda c: c.runtime):
                for key, limit in own.items():
                    if key == "decode_runtime" or (key == "min_decode_speedup" and runtime_filter
                                                   and cell.runtime != runtime_filter):
                        continue
                    out += self._guarded(cell, key, limit, LIMITS[key][0], LIMITS[key][1], self._own)
                if self.base is not None:
                    for key, limit in base.items():
                        out += self._guarded(cell, key, limit, BASELINE_LIMITS[key][0], BASELINE_LIMITS[key][1],
                                             self._vs_baseline, rule=f"baseline.{key}")
            if runtime_filter and "min_decode_speedup" in own and not any(c.runtime == runtime_filter for c in cells):
                out.append(self._fail(v, runtime_filter, "min_decode_speedup", LIMITS["min_decode_speedup"][1], "min",
                                      own["min_decode_speedup"], f"not measured on {runtime_filter}"))
        return out

    def _guarded(self, cell, key, limit, direction, metric, fn, rule=None) -> list[Decision]:
        """A cell that failed or was flagged, or a metric that is missing, fails the rule (fail closed)."""
        if cell.problem:
            return [self._fail(cell.variant, cell.runtime, rule or key, metric, direction, limit, cell.problem)]
        try:
            return fn(cell, key, limit)
        except NotMeasured as e:
            return [self._fail(cell.variant, cell.runtime, rule or key, metric, direction, limit, f"not measured: {e}")]
