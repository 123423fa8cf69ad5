"""A results.json repeats its run: `compare --config results.json` resolves to the configuration it recorded,
"all windows" (--windows 0) and "every document" (--limit 0) included."""
import json

from harness.config import read_config_file, resolve


def _roundtrip(sections: dict, tmp_path):
    cfg = resolve(sections)
    f = tmp_path / "results.json"
    f.write_text(json.dumps({"config": cfg.as_sections()}, default=str))
    return cfg, resolve(read_config_file(f))


def test_windows_0_and_limit_0_survive_a_repeat(tmp_path):
    cfg, again = _roundtrip({"eval": {"windows": 0}, "tasks": {"limit": 0}}, tmp_path)
    assert cfg.eval.windows is None and cfg.tasks.limit is None  # all of them
    assert again.eval.windows is None and again.tasks.limit is None
    assert again.eval == cfg.eval and again.tasks == cfg.tasks


def test_other_counts_survive_a_repeat(tmp_path):
    cfg, again = _roundtrip({"eval": {"windows": 12, "gen_prompts": 4}, "tasks": {"limit": 30}}, tmp_path)
    assert (again.eval.windows, again.eval.gen_prompts, again.tasks.limit) == (12, 4, 30)
    assert again.eval == cfg.eval and again.tasks == cfg.tasks


def test_every_command_prints_its_help(capsys):
    """Every option's help text survives argparse's %-formatting (a bare % in one broke `compare --help`)."""
    import pytest

    from harness.cli import main

    for cmd in ("compare", "bench", "sensitivity", "gate", "cache", "report", "list"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0, cmd
        assert "usage:" in capsys.readouterr().out
