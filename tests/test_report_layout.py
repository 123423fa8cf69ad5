"""The report fits a 1400-pixel window: the summary comes as two tables of the same rows (quality; size, speed and
generations), and any table still wider than the page scrolls inside it instead of running past it (checked by
eye in headless Chromium; this test keeps the structure that made it fit)."""
import json
import re
from pathlib import Path

from reports.html import CSS, write_report

RESULTS = Path(__file__).resolve().parent.parent / "measurements" / "cpu-smollm2-gate" / "results.json"


def test_the_summary_is_two_tables_each_of_a_page_width(tmp_path):
    out = tmp_path / "report.html"
    write_report(json.loads(RESULTS.read_text()), out)
    page = out.read_text()
    summary = page[page.index("<h2>Summary</h2>"):]
    tables = re.findall(r"<table>.*?</table>", summary, flags=re.S)[:2]
    heads = [re.findall(r"<th>([^<]*)</th>", t) for t in tables]
    assert "KLD mean [CI]" in heads[0] and "size MB" not in heads[0]
    assert "size MB" in heads[1] and "KLD mean [CI]" not in heads[1]
    assert heads[0][:2] == heads[1][:2] == ["variant", "runtime"]
    assert all(len(h) <= 12 for h in heads), [len(h) for h in heads]
    assert "overflow-x:auto" in CSS.split("table{", 1)[1].split("}", 1)[0]
