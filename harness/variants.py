"""Build (or reuse from the shared store) every variant artifact; OUT/artifacts/<variant> links to it."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core import interrupts
from harness import store
from harness.host import this_host
from core.errors import UserError
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
    node: str | None = None  # the cluster node that built or fetched it (--executor ray)


def build_variants(source, cfg, calibration: Path, artifacts_dir: Path, console,
                   sensitivity: Path | None = None) -> dict[str, VariantOutcome]:
    """Every variant of cfg in order (one waits for the variants it `needs`): here, or as Ray tasks."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if getattr(cfg, "executor", "local") == "ray":
        from harness.ray_executor import build_on_ray

        return build_on_ray(source, cfg, calibration, artifacts_dir, console, sensitivity, build_one, VariantOutcome)
    outcomes: dict[str, VariantOutcome] = {}
    for q in make_quantizers(cfg.variants, cfg.awq):
        interrupts.check()
        outcomes[q.variant] = build_one(q, source, cfg, calibration, artifacts_dir, outcomes, console, sensitivity)
    return outcomes


def build_one(q, source, cfg, calibration: Path, artifacts_dir: Path, upstream: dict[str, VariantOutcome], console,
              sensitivity: Path | None = None) -> VariantOutcome:
    """One variant from the store (same key), else built under a partial name and renamed into place; the first
    complete artifact under a key wins when two builders race (on two nodes of a cluster)."""
    t_variant = time.time()
    # only what the quantizer declares it reads: an undeclared input would work here by luck of order and fail on a
    # cluster, where a build waits only for its `needs`
    done = {n: (o.folder, o.manifest) for n, o in upstream.items() if o.manifest is not None and n in q.needs}
    missing = [n for n in q.needs if n not in done]
    if missing:
        console.line(f"[{q.variant}] skipped: needs {', '.join(missing)}")
        return VariantOutcome(q.variant, None, None, error=f"needs {', '.join(missing)}, which failed")
    ctx = BuildContext(source=source, upstream=dict(done), calibration=calibration, threads=cfg.eval.threads,
                       log=console.line, progress=console.progress,
                       device_class=this_host().device_class(cfg.awq.device), sensitivity=sensitivity)
    try:
        key = q.cache_key(ctx)
    except UserError:
        raise
    except Exception as e:  # a tool environment that cannot even report its versions
        console.alarm(f"[{q.variant}] FAILED before building: {e}")
        return VariantOutcome(q.variant, None, None, error=str(e))
    folder = store.artifact_slot(q.variant, key)
    link = artifacts_dir / q.variant
    if not cfg.force:
        reused = _reuse(q.variant, folder, key, console)
        if reused is not None:
            store.link_into_run(folder, link)
            return VariantOutcome(q.variant, folder, reused, cached=True, wall_s=time.time() - t_variant)
    store.remove_stale_partials(folder)
    tmp = store.partial_name(folder)
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
        interrupts.check()  # a failure caused by Ctrl-C is an interruption, not a failed build
        console.alarm(f"[{q.variant}] FAILED: {e}")
        return VariantOutcome(q.variant, None, None, error=str(e), wall_s=time.time() - t_variant)
    except BaseException:  # interrupted: nothing half-written stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    m.cache_key = key
    m.save(tmp)
    if not store.commit_dir(tmp, folder, lambda: _reuse(q.variant, folder, key, console, quiet=True) is not None,
                            replace=cfg.force):
        console.line(f"[{q.variant}] another builder stored the same artifact first: using it")
        m = Manifest.load(folder)
    store.link_into_run(folder, link)
    console.line(f"[{q.variant}] done in {time.time() - t0:.1f} s, {m.size_bytes / 1e6:.1f} MB")
    return VariantOutcome(q.variant, folder, m, wall_s=time.time() - t_variant)


def _reuse(variant: str, folder: Path, key: str, console, quiet: bool = False) -> Manifest | None:
    """The stored artifact's manifest when it is whole and made under this key, else None."""
    if not (folder / "manifest.json").is_file():
        return None
    try:
        m = Manifest.load(folder)
        why = m.problem(folder) if m.cache_key == key else "its key differs"
        if why and m.cache_key == key and not quiet:
            console.line(f"[{variant}] cached artifact not trusted ({why}): building it again")
        if not why and (folder / m.artifact).exists():
            if not quiet:
                console.line(f"[{variant}] cached artifact reused ({folder / m.artifact}, key {key[:12]})")
            store.touch(folder)
            return m
    except (OSError, ValueError, TypeError):
        pass
    return None
