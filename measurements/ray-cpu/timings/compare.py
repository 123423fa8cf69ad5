"""Check the archived timing pairs agree (local against Ray): the sweep's groups, and the two models' rows."""
import gzip, json, re, sys
from pathlib import Path

TIMED = re.compile(r"tok_s|ttft|latency|rss|roofline|seconds|_ms$|_s$")
here = Path(__file__).parent
ok = True
a, b = (json.loads((here / f"sensitivity-{n}.json").read_text()) for n in ("local", "ray"))
strip = lambda g: {k: v for k, v in g.items() if k not in ("seconds", "node")}
same = [strip(x) == strip(y) for x, y in zip(a["groups"], b["groups"])]
print(f"sweep: {len(a['groups'])} groups, {sum(same)} identical; base KLD {a['base_kld']} / {b['base_kld']}; "
      f"{a['seconds']} s local, {b['seconds']} s Ray")
ok &= all(same) and len(a["groups"]) == len(b["groups"]) and a["base_kld"] == b["base_kld"]
for m in ("smollm2-135m-instruct-fp16", "smollm2-135m-nudged"):
    ra, rb = ({(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"])
               for r in json.loads(gzip.open(here / f"two-{n}-{m}.results.json.gz").read())["rows"]} for n in ("local", "ray"))
    qual = [k for k in ra if not TIMED.search(k[2])]
    n_same = sum(ra[k] == rb.get(k) for k in qual)
    print(f"{m}: {len(ra)} rows, same keys {set(ra) == set(rb)}, {len(qual)} quality and size rows, {n_same} identical; "
          f"differing: {sorted({k[2] for k in ra if ra[k] != rb.get(k)})}")
    ok &= set(ra) == set(rb) and n_same == len(qual)
sys.exit(0 if ok else 1)
