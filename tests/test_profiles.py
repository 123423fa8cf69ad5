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
