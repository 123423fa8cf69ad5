"""Build (or reuse from the shared store) every variant artifact; OUT/artifacts/<variant> links to it."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness import store
from harness.host import this_host
from core.errors import UserError
from harness.lock import _alive
from quantizers.base import BuildContext, Manifest, QuantizerError
from quantizers.registry import make_quantizers


@dataclass
class VariantOutcome:
    variant: str
    folder: Path | None
    manifest: Manifest | None
    cached: bool = False
    error: str | None = None
    wall_s: float = 0.0  # time spent on it in this run


def build_variants(source, cfg, calibration: Path, artifacts_dir: Path, console,
                   sensitivity: Path | None = None) -> dict[str, VariantOutcome]:
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, tuple[Path, Manifest]] = {}
    outcomes: dict[str, VariantOutcome] = {}
    for q in make_quantizers(cfg.variants, cfg.awq):
        t_variant = time.time()
        missing = [n for n in q.needs if n not in done]
        if missing:
            outcomes[q.variant] = VariantOutcome(q.variant, None, None, error=f"needs {', '.join(missing)}, which failed")
            console.line(f"[{q.variant}] skipped: needs {', '.join(missing)}")
            continue
        ctx = BuildContext(source=source, upstream=dict(done), calibration=calibration, threads=cfg.eval.threads,
                           log=console.line, progress=console.progress,
                           device_class=this_host().device_class(cfg.awq.device), sensitivity=sensitivity)
        try:
            key = q.cache_key(ctx)
        except UserError:
            raise
        except Exception as e:  # a tool environment that cannot even report its versions
            outcomes[q.variant] = VariantOutcome(q.variant, None, None, error=str(e))
            console.alarm(f"[{q.variant}] FAILED before building: {e}")
            continue
        folder = store.artifact_slot(q.variant, key)
        link = artifacts_dir / q.variant
        if not cfg.force and (folder / "manifest.json").is_file():
            try:
                m = Manifest.load(folder)
                why = m.problem(folder) if m.cache_key == key else "its key differs"
                if why and m.cache_key == key:
                    console.line(f"[{q.variant}] cached artifact not trusted ({why}): building it again")
                if not why and (folder / m.artifact).exists():
                    console.line(f"[{q.variant}] cached artifact reused ({folder / m.artifact}, key {key[:12]})")
                    store.touch(folder)
                    store.link_into_run(folder, link)
                    done[q.variant] = (folder, m)
                    outcomes[q.variant] = VariantOutcome(q.variant, folder, m, cached=True, wall_s=time.time() - t_variant)
                    continue
            except (OSError, ValueError, TypeError):
                pass
        for stale in folder.parent.glob(f".{folder.name}.partial-*"):  # left by a killed run
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.time()
        try:
            tmp.mkdir(parents=True)
            console.line(f"[{q.variant}] building with {type(q).__name__} ...")
            m = q.build(ctx, tmp)
        except UserError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (QuantizerError, OSError, ValueError, RuntimeError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            outcomes[q.variant] = VariantOutcome(q.variant, None, None, error=str(e), wall_s=time.time() - t_variant)
            console.alarm(f"[{q.variant}] FAILED: {e}")
            continue
        except BaseException:  # interrupted: nothing half-written stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        m.cache_key = key
        m.save(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        store.link_into_run(folder, link)
        console.line(f"[{q.variant}] done in {time.time() - t0:.1f} s, {m.size_bytes / 1e6:.1f} MB")
        done[q.variant] = (folder, m)
        outcomes[q.variant] = VariantOutcome(q.variant, folder, m, wall_s=time.time() - t_variant)
    return outcomes
