"""Profiles: the counts a run measures with (core/profiles.py), and whether each gate rule can decide at them
(harness/gate/resolution.py)."""
import pytest

from core.errors import UserError
from harness.config import merge, resolve
from harness.gate.preview import default_limits
from harness.gate.resolution import RESOLUTIONS, decidability


def _cfg(**sections):
    return resolve(merge({"run": {"out": "runs/x"}}, sections))


def test_the_profile_follows_the_device_and_options_win_over_it():
    quick = _cfg()
    assert quick.profile == "quick" and quick.eval.instructions == 0 and quick.tasks.limit == 50
    assert quick.eval.windows == 48 and quick.eval.long_ctx == 2048
    release = _cfg(eval={"device": "cuda"})
    assert release.profile == "release" and release.eval.instructions == 276 and release.eval.long_windows == 9
    assert release.tasks.limit == 600 and release.eval.windows == 96
    mine = _cfg(run={"profile": "release"}, eval={"windows": 12})  # an option given wins over the profile
    assert mine.profile == "release" and mine.eval.windows == 12 and mine.eval.instructions == 276
    again = resolve(merge({"run": {"out": "runs/y"}}, mine.as_sections()))  # a results.json's config repeats it
    assert again.eval == mine.eval and again.tasks == mine.tasks and again.profile == "release"
    with pytest.raises(UserError):
        _cfg(run={"profile": "fast"})


def test_every_rule_decides_at_the_release_counts_and_the_quick_look_says_which_do_not():
    limits = default_limits()
    release = {r["rule"]: r for r in decidability(_cfg(run={"profile": "release"}).as_sections(), limits)}
    assert set(release) == set(RESOLUTIONS)
    from harness.gate.resolution import SET_BOUND

    assert {k for k, r in release.items() if not r["decides"]} == set(SET_BOUND)
    assert not set(SET_BOUND) & set(limits)  # a rule that cannot decide stays out of the default policy
    quick = {r["rule"]: r for r in decidability(_cfg().as_sections(), limits)}
    for rule in ("max_ppl_increase_pct", "max_kld_mean", "max_kld_p99", "min_top1_agreement", "max_flip_rate"):
        assert quick[rule]["decides"] is True, quick[rule]  # the default policy's rules decide in a quick look
    assert quick["max_if_strict_drop_points"]["decides"] is None  # not measured there
    assert quick["max_acc_drop_points"]["decides"] is False and quick["max_acc_drop_points"]["count_needed"] > 50


def test_the_half_width_shrinks_with_the_square_root_of_the_count():
    few = {r["rule"]: r for r in decidability(_cfg(eval={"windows": 12}).as_sections())}
    many = {r["rule"]: r for r in decidability(_cfg(eval={"windows": 48}).as_sections())}
    assert few["max_kld_mean"]["half_width"] == pytest.approx(2 * many["max_kld_mean"]["half_width"])
    assert many["max_kld_mean"]["half_width"] == pytest.approx(RESOLUTIONS["max_kld_mean"].ref_half_width)


def test_the_half_widths_are_the_ladder_archives():
    """harness/gate/resolution.py's half-widths were copied by hand from the ladder's rows: recomputed here, the
    widest of gguf-q4_k_m × llama.cpp and awq-int4 × transformers (the flip rate has no row: left to the gate)."""
    import gzip
    import json
    from pathlib import Path

    from harness.gate.resolution import LADDER

    rows = json.load(gzip.open(Path(__file__).resolve().parent.parent / LADDER / "results.json.gz", "rt"))["rows"]
    metric = {"max_ppl_increase_pct": ("ppl_increase_pct", 1), "max_kld_mean": ("kld_mean", 1),
              "max_kld_p99": ("kld_p99", 1), "min_top1_agreement": ("top1_agreement", 1),
              "max_acc_drop_points": (":acc_delta_vs_fp16", 100),
              "max_loop_rate_increase": ("gen_loop_rate_increase", 1),
              "max_degenerate_rate_increase": ("gen_degenerate_rate_increase", 1),
              "max_long_kld_mean_late": ("long_kld_mean_4k_8k", 1),
              "max_long_ppl_increase_pct_late": ("long_ppl_increase_pct_4k_8k", 1),
              "max_long_kld_rise": ("long_kld_rise", 1), "max_needle_accuracy_drop": ("needle_accuracy_drop", 1),
              "max_if_strict_drop_points": ("if_prompt_strict_drop", 1),
              "max_if_loose_drop_points": ("if_prompt_loose_drop", 1)}
    pairs = {("gguf-q4_k_m", "llama.cpp"), ("awq-int4", "transformers")}
    for rule, (m, scale) in metric.items():
        hw = [(r["ci_high"] - r["ci_low"]) / 2 * scale for r in rows if (r["variant"], r["runtime"]) in pairs
              and r["ci_low"] is not None and (r["metric"] == m or (m[0] == ":" and r["metric"].endswith(m)))]
        assert RESOLUTIONS[rule].ref_half_width == pytest.approx(max(hw), rel=0.005), rule
    assert set(metric) | {"max_flip_rate"} == set(RESOLUTIONS)
