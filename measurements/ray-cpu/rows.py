"""Local against Ray: the rows of two results.json compared (quality and task rows must be identical; timing and
memory rows may differ). Used by default/compare.py and timings/compare.py."""
import gzip
import json
import re
from pathlib import Path

TIMED = re.compile(r"tok_s|ttft|latency|rss|roofline|seconds|_ms$|_s$")


def load(path: Path) -> dict:
    return json.loads(gzip.open(path).read() if path.suffix == ".gz" else path.read_text())


def table(doc: dict) -> dict:
    return {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in doc["rows"]}


def agree(a: dict, b: dict, label: str = "") -> bool:
    """Print what differs between two results' rows; True when the keys match and every untimed row is identical."""
    ra, rb = table(a), table(b)
    qual = [k for k in ra if not TIMED.search(k[2])]
    same = sum(ra[k] == rb.get(k) for k in qual)
    print(f"{label}rows {len(ra)} / {len(rb)}, same keys {set(ra) == set(rb)}; quality and task rows {len(qual)} "
          f"(tasks {sum(':' in k[2] for k in qual)}), identical {same}; "
          f"differing metrics {sorted({k[2] for k in ra if ra[k] != rb.get(k)})}")
    return set(ra) == set(rb) and same == len(qual)
