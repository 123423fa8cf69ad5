"""Compare a full-default pair (Ray, local): quality rows, task rows, cell keys, flags.
Usage: compare.py [RAY LOCAL] (results.json or .json.gz; default: the 303160f pair archived here)."""
import sys
from pathlib import Path

here = Path(__file__).parent
sys.path.insert(0, str(here.parent))
from rows import agree, load, table  # noqa: E402

paths = [Path(p) for p in sys.argv[1:3]] or [here / "results-ray.json", here / "results-local.json"]
a, b = (load(p) for p in paths)
ok = agree(a, b)
for sec in ("cells", "task_cells"):
    ka, kb = ([c.get("key") for c in d.get(sec, [])] for d in (a, b))
    if None in ka + kb:  # results.json records each cell's key since issue 37: older runs cannot be compared here
        print(f"{sec}: keys not recorded in these results ({ka.count(None)} and {kb.count(None)} of {len(ka)} missing): "
              "not compared")
        continue
    print(f"{sec}: {len(ka)} keys, identical {ka == kb}")
    ok &= ka == kb
print("flags ray", [(f["level"], f["variant"], f["runtime"]) for f in a["flags"] if f["level"] != "warning"],
      "local", [(f["level"], f["variant"], f["runtime"]) for f in b["flags"] if f["level"] != "warning"])
ra, rb = table(a), table(b)
for k in [("gguf-q4_k_m", "llama.cpp", "ppl"), ("awq-int4", "transformers", "kld_mean"),
          ("gguf-q4_k_m", "llama.cpp", "lambada_openai:acc")]:
    print(k, ra.get(k), rb.get(k))
print("ray notes", sorted({s.get("note") for s in a["stages"] if s["kind"] in ("build", "cell") and s.get("note")}))
print("wall ray", a["run"]["wall_s"], "local", b["run"]["wall_s"])
sys.exit(0 if ok else 1)
