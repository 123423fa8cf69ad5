import json, re, glob
TIMED = re.compile(r"tok_s|ttft|latency|rss|roofline|seconds|_ms$|_s$")
a = json.load(open("results-ray.json")); b = json.load(open("results-local.json"))
ra = {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in a["rows"]}
rb = {(r["variant"], r["runtime"], r["metric"]): (r["value"], r["ci_low"], r["ci_high"]) for r in b["rows"]}
print("rows", len(ra), len(rb), "same keys", set(ra) == set(rb))
diff = sorted({k[2] for k in ra if ra[k] != rb.get(k)})
print("differing metrics", diff)
print("non-timing differing", [m for m in diff if not TIMED.search(m)])
qual = [k for k in ra if not TIMED.search(k[2])]
print("quality rows compared", len(qual), "identical", sum(ra[k] == rb[k] for k in qual))
def keys(d): return {f.split("/")[-1]: json.load(open(f))["key"] for f in glob.glob(d + "/cells/*.json") if not f.endswith((".spec.json", ".result.json"))}
print("cell keys equal", keys("/tmp/eq/ray") == keys("/tmp/eq/local"), len(keys("/tmp/eq/ray")))
print("cells", [(c["variant"], c["runtime"], c["status"]) for c in a["cells"]])
print("flags ray", [(f["level"], f["variant"]) for f in a["flags"]], "local", [(f["level"], f["variant"]) for f in b["flags"]])
for k in [("gguf-q4_k_m","llama.cpp","ppl"),("awq-int4","transformers","kld_mean"),("gguf-q4_k_m","llama.cpp","kld_mean")]:
    print(k, ra.get(k), rb.get(k))
print("ray nodes", sorted({s["note"] for s in a["stages"] if s["kind"] in ("build","cell")}))
print("wall", a["run"]["wall_s"], b["run"]["wall_s"])
