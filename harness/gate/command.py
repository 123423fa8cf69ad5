"""`quantcompare gate`: read results (and a baseline), apply a policy, write the verdict, exit with it."""
from __future__ import annotations

import time
from pathlib import Path

from evaluators.stats import Bootstrap
from core.errors import UserError
from harness.gate import verdict as verdict_mod
from harness.evidence import load_results
from harness.gate.policy import DEFAULT_POLICY, load_policy
from harness.gate.rules import Gate
from harness.results_doc import with_bootstrap


def baseline_pairing(results: dict, baseline: dict, unpaired_ok: bool) -> bool:
    """True when the baseline scored the same windows with the same tokenizer (a paired comparison)."""
    a, b = results.get("windows", {}), baseline.get("windows", {})
    same = (a.get("windows_sha256") == b.get("windows_sha256") and a.get("windows_sha256") is not None
            and a.get("tokenizer_sha256") == b.get("tokenizer_sha256"))
    methods = {(c["variant"], c["runtime"]): c.get("kld_method") for c in baseline.get("cells", [])}
    for c in results.get("cells", []):
        theirs = methods.get((c["variant"], c["runtime"]))
        if c.get("kld_method") and theirs and c["kld_method"] != theirs and not unpaired_ok:
            raise UserError(f"the baseline's KLD of {c['variant']} × {c['runtime']} was taken another way ({theirs}; "
                            f"here: {c['kld_method']}), so its KLD figures do not compare: measure both the same way "
                            "(--kld-exact or the same --kld-top-k), or pass --unpaired-baseline")
    if same:
        return True
    if not unpaired_ok:
        raise UserError(f"the baseline was measured on other windows (windows {str(b.get('windows_sha256'))[:12]} vs "
                        f"{str(a.get('windows_sha256'))[:12]}, or another tokenizer): pass --unpaired-baseline to "
                        "compare unpaired")
    return False


def run_gate(results_path: Path, policy_path: Path | None = None, baseline_path: Path | None = None,
             unpaired_baseline: bool = False, seed: int | None = None, resamples: int | None = None,
             out_dir: Path | None = None, console=print, render_report: bool = True) -> int:
    t0 = time.time()
    results = load_results(results_path)
    policy = load_policy(policy_path)
    if seed is not None or resamples is not None:
        from dataclasses import replace

        policy = replace(policy, seed=policy.seed if seed is None else seed,
                         resamples=policy.resamples if resamples is None else resamples)
        if policy.resamples < 100:
            raise UserError("--resamples must be at least 100")
    baseline, paired = None, True
    if baseline_path is not None:
        baseline = load_results(baseline_path, "baseline")
        paired = baseline_pairing(results, baseline, unpaired_baseline)
    boot = Bootstrap(policy.seed, policy.resamples, policy.confidence)
    decisions = Gate(results, policy, baseline, paired, boot).run()
    doc = verdict_mod.build(decisions, policy, results_path, results, baseline_path, paired)
    out = out_dir or results_path.parent
    jf, mf = verdict_mod.write(doc, out)
    for line in verdict_mod.markdown(doc).splitlines():
        console(line)
    wrote = [str(jf), str(mf)]
    if render_report:
        try:
            from reports.html import write_report

            # the page prints the verdict's own intervals: rows recomputed under the policy's bootstrap
            write_report(with_bootstrap(results, boot), out / "report.html", verdict=doc)
            wrote.append(str(out / "report.html"))
        except ImportError:
            console("report.html not re-rendered here (no pandas/matplotlib); verdict.json and verdict.md are the record")
        except (KeyError, TypeError, ValueError) as e:  # the verdict stands whatever the page can show
            console(f"report.html not re-rendered: the results lack what the page shows ({type(e).__name__}: {e})")
    console(f"wrote {', '.join(wrote)} in {time.time() - t0:.1f} s; verdict {doc['verdict'].upper()} (exit {doc['exit_code']})")
    return doc["exit_code"]


def print_default_policy() -> int:
    print(DEFAULT_POLICY.read_text(encoding="utf-8"), end="")
    return 0
