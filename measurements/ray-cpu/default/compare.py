"""Compare the full-default pair (local, Ray) archived here: quality rows, task rows, cell keys, flags."""
import json, re, sys
from pathlib import Path

TIMED = re.compile(r"tok_s|ttft|latency|rss|roofline|seconds|_ms$|_s$")
here = Path(__file__).parent
a, b = (json.loads((here / f"results-{n}.json").read_text()) for n in ("ray", "local"))
ra = {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in a["rows"]}
rb = {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in b["rows"]}
print("rows", len(ra), len(rb), "same keys", set(ra) == set(rb))
diff = sorted({k[2] for k in ra if ra[k] != rb.get(k)})
print("differing metrics", diff)
qual = [k for k in ra if not TIMED.search(k[2])]
same = sum(ra[k] == rb.get(k) for k in qual)
print("quality and task rows compared", len(qual), "identical", same, "(tasks:", sum(":" in k[2] for k in qual), ")")
print("flags ray", [(f["level"], f["variant"], f["runtime"]) for f in a["flags"] if f["level"] != "warning"],
      "local", [(f["level"], f["variant"], f["runtime"]) for f in b["flags"] if f["level"] != "warning"])
for k in [("gguf-q4_k_m", "llama.cpp", "ppl"), ("awq-int4", "transformers", "kld_mean"),
          ("gguf-q4_k_m", "llama.cpp", "lambada_openai:acc")]:
    print(k, ra.get(k), rb.get(k))
print("ray notes", sorted({s.get("note") for s in a["stages"] if s["kind"] in ("build", "cell") and s.get("note")}))
print("wall ray", a["run"]["wall_s"], "local", b["run"]["wall_s"])
sys.exit(0 if same == len(qual) and set(ra) == set(rb) else 1)
