"""Check the archived timing pairs agree (local against Ray): the sweep's groups, and the two models' rows."""
import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here.parent))
from rows import agree, load  # noqa: E402

a, b = (load(here / f"sensitivity-{n}.json") for n in ("local", "ray"))
strip = lambda g: {k: v for k, v in g.items() if k not in ("seconds", "node")}
same = [strip(x) == strip(y) for x, y in zip(a["groups"], b["groups"])]
print(f"sweep: {len(a['groups'])} groups, {sum(same)} identical; base KLD {a['base_kld']} / {b['base_kld']}; "
      f"{a['seconds']} s local, {b['seconds']} s Ray")
ok = all(same) and len(a["groups"]) == len(b["groups"]) and a["base_kld"] == b["base_kld"]
for m in ("smollm2-135m-instruct-fp16", "smollm2-135m-nudged"):
    ok &= agree(*(load(here / f"two-{n}-{m}.results.json.gz") for n in ("local", "ray")), label=f"{m}: ")
sys.exit(0 if ok else 1)
