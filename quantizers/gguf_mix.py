"""GGUF files whose tensor groups carry types of their own, made by llama.cpp's llama-quantize with
`--tensor-type-file` (a regex per group, its type) and the importance matrix:

- `gguf-probe-<group>`: everything Q8_0 except one group (a block's attention or feed-forward tensors, the
  token embedding, the output layer) at the lowest type its tensors take; `gguf-probe-base` is all Q8_0. The
  sensitivity stage (harness/sensitivity.py) measures how much each probe's KLD against fp16 grows.
- `gguf-mix-<bpw>` (bits per source parameter, e.g. gguf-mix-4.9) and `gguf-mix@<variant>` (no larger than that
  variant's file): a bits budget spent greedily where the measured sensitivity says it buys the most.

A tensor's candidate types are the stock types whose block divides its rows: K-quants (Q2_K … Q6_K) for rows of
a multiple of 256 values, else the 32-value types (Q4_0 … Q5_1); Q8_0 tops both ladders."""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.registry import register_quantizer
from quantizers.base import BuildContext, Manifest, Quantizer, QuantizerError, folder_size, run_tool
from quantizers.gguf import llama_cpp_python_version
from quantizers.llama_tools import IMATRIX_VARIANT, llama_tool

LADDER_256 = ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_0")
LADDER_32 = ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0")
BASE_TYPE = "q8_0"
# llama.cpp's bytes per block and values per block (ggml's type traits)
TYPE_SIZE = {"q2_k": (84, 256), "q3_k": (110, 256), "q4_k": (144, 256), "q5_k": (176, 256), "q6_k": (210, 256),
             "q4_0": (18, 32), "q4_1": (20, 32), "q5_0": (22, 32), "q5_1": (24, 32), "q8_0": (34, 32)}
# bytes kept free of the budget for what the tensors' sizes do not predict: the importance matrix's metadata
# (352 bytes on the default model) and alignment
MARGIN_BYTES = 64 * 1024


def bits(t: str) -> float:
    size, block = TYPE_SIZE[t]
    return 8.0 * size / block


def ladder(ncols: int) -> tuple[str, ...]:
    return LADDER_256 if ncols % 256 == 0 else LADDER_32


@dataclass(frozen=True)
class Tensor:
    name: str
    ncols: int
    n: int  # values


@dataclass(frozen=True)
class Group:
    name: str  # token_embd | output | blk3-attn | blk3-ffn
    tensors: tuple[Tensor, ...]

    @property
    def n(self) -> int:
        return sum(t.n for t in self.tensors)

    @property
    def levels(self) -> int:
        return max(len(ladder(t.ncols)) for t in self.tensors)

    def types(self, level: int) -> dict[str, str]:
        """Each tensor's type at a level of the group's ladder (0: the lowest)."""
        return {t.name: ladder(t.ncols)[min(level, len(ladder(t.ncols)) - 1)] for t in self.tensors}

    def bits(self, level: int) -> float:
        return sum(t.n * bits(ty) for t, ty in zip(self.tensors, self.types(level).values()))


def tensor_groups(gguf_path: Path) -> tuple[list[Group], int]:
    """The quantizable groups of a GGUF, and the bytes of everything else (norms, metadata, alignment)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    groups: dict[str, list[Tensor]] = {}
    grouped = 0
    for t in reader.tensors:
        shape = [int(x) for x in t.shape]
        if len(shape) < 2 or not t.name.endswith(".weight"):
            continue
        m = re.match(r"blk\.(\d+)\.(attn|ffn)_", t.name)
        key = f"blk{m.group(1)}-{m.group(2)}" if m else t.name.split(".")[0]
        if not m and key not in ("token_embd", "output"):
            continue
        groups.setdefault(key, []).append(Tensor(t.name, shape[0], int(t.n_elements)))
        grouped += int(t.n_bytes)
    order = sorted(groups, key=lambda k: (k != "token_embd", k == "output",
                                          int(re.findall(r"\d+", k)[0]) if k.startswith("blk") else 0, k))
    fixed = Path(gguf_path).stat().st_size - grouped
    return [Group(k, tuple(groups[k])) for k in order], fixed


def allocate(groups: list[Group], sensitivity: dict[str, float], budget_bits: float) -> dict[str, int]:
    """Each group's ladder level, spending `budget_bits` on the groups' values.

    Model: a group's KLD increase at level l is its measured increase at level 0 times 4^-(extra bits per value)
    (the quantization noise power halves its amplitude per bit). Every group starts at level 0; upgrades are
    taken in order of predicted KLD saved per bit, and the first one that does not fit ends the allocation, so
    a larger budget takes every upgrade a smaller one took (the allocation is monotone in the budget)."""
    unmeasured = [g.name for g in groups if g.name not in sensitivity]
    if unmeasured:
        raise UserError(f"tensor group {unmeasured[0]} has no sensitivity measurement ({len(unmeasured)} group(s) in "
                        "all): a mix is built only from a sensitivity that covers every group")
    level = {g.name: 0 for g in groups}
    spent = sum(g.bits(0) for g in groups)
    if spent > budget_bits:
        raise UserError(f"the budget ({budget_bits / 8e6:.1f} MB of weights) is below the smallest mix "
                        f"({spent / 8e6:.1f} MB, every group at its lowest type)")

    def loss(g: Group, lv: int) -> float:
        s = max(float(sensitivity[g.name]), 1e-12)  # a measured 0 (clipped) still orders by bits
        return s * 4.0 ** (-(g.bits(lv) - g.bits(0)) / g.n)

    steps = []
    for g in groups:
        for lv in range(g.levels - 1):
            cost = g.bits(lv + 1) - g.bits(lv)
            steps.append(((loss(g, lv) - loss(g, lv + 1)) / cost, g.name, lv + 1, cost))
    # within a group the gains per bit fall level by level (convex); order by gain, then keep each group's levels in order
    steps.sort(key=lambda s: (-s[0], s[1], s[2]))
    for _, name, lv, cost in steps:
        if lv != level[name] + 1:
            continue
        if spent + cost > budget_bits:
            break
        level[name] = lv
        spent += cost
    return level


def type_file_lines(groups: list[Group], level: dict[str, int]) -> list[str]:
    """llama-quantize --tensor-type-file lines: one exact-name regex per tensor and its type."""
    lines = []
    for g in groups:
        for name, ty in g.types(level.get(g.name, 0)).items():
            lines.append(f"^{re.escape(name)}$={ty}")
    return lines


def predicted_bytes(groups: list[Group], level: dict[str, int], fixed: int) -> int:
    total = fixed
    for g in groups:
        for t, ty in zip(g.tensors, g.types(level.get(g.name, 0)).values()):
            size, block = TYPE_SIZE[ty]
            total += (t.n // block) * size
    return int(total)


class _TypedGguf(Quantizer):
    """llama-quantize --imatrix with per-tensor types, from gguf-f16."""

    def tool_versions(self) -> dict[str, str]:
        v = llama_cpp_python_version()
        return {"llama_cpp_python": v, "llama-quantize": "vendored llama.cpp of llama-cpp-python " + v}

    def _levels(self, ctx: BuildContext, groups: list[Group], fixed: int) -> dict[str, int]:
        raise NotImplementedError

    def build(self, ctx: BuildContext, dest: Path) -> Manifest:
        f16_dir, f16 = ctx.upstream["gguf-f16"]
        im_dir, im = ctx.upstream[IMATRIX_VARIANT]
        src = f16_dir / f16.artifact
        groups, fixed = tensor_groups(src)
        level = self._levels(ctx, groups, fixed)
        lines = type_file_lines(groups, level)
        types_file = dest / "tensor-types.txt"
        types_file.write_text("\n".join(lines) + "\n")
        out = dest / f"model-{self.variant.replace('@', '-at-')}.gguf"
        t0 = time.time()
        ctx.log(f"[{self.variant}] llama-quantize --imatrix --tensor-type-file ({len(lines)} tensors) {BASE_TYPE.upper()}")
        run_tool([str(llama_tool("llama-quantize", ctx.log)), "--imatrix", str(im_dir / im.artifact), "--tensor-type-file",
                  str(types_file), str(src), str(out), BASE_TYPE.upper(), str(ctx.threads)], "llama-quantize")
        recipe = self.recipe(ctx)
        recipe["groups"] = {g.name: {"level": level[g.name], "types": sorted(set(g.types(level[g.name]).values())),
                                     "values": g.n} for g in groups}
        recipe["predicted_bytes"] = predicted_bytes(groups, level, fixed)
        budget = getattr(self, "target_bytes", None)
        if budget is not None and folder_size(out) > budget:
            raise QuantizerError(f"{self.variant} came out at {folder_size(out):,} bytes, over its budget of {budget:,}")
        return Manifest(variant=self.variant, format="gguf", artifact=out.name, tool="llama.cpp llama-quantize "
                        "--imatrix --tensor-type-file", tool_versions=self.tool_versions(), recipe=recipe,
                        source_sha256=ctx.source.sha256, cache_key="", wall_time_s=round(time.time() - t0, 2),
                        size_bytes=folder_size(out), calibration_sha256=im.calibration_sha256)


class ProbeQuantizer(_TypedGguf):
    """One group at its lowest type, every other tensor Q8_0 (or none: the base)."""

    needs = ("gguf-f16", IMATRIX_VARIANT)

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.group = variant[len("gguf-probe-"):]

    def recipe(self, ctx: BuildContext) -> dict:
        return {"base": BASE_TYPE, "group_at_lowest_type": None if self.group == "base" else self.group}

    def _levels(self, ctx, groups, fixed):
        names = {g.name for g in groups}
        if self.group != "base" and self.group not in names:
            raise QuantizerError(f"the model has no tensor group {self.group!r} (it has {', '.join(sorted(names))})")
        return {g.name: 0 if g.name == self.group else g.levels - 1 for g in groups}


class MixQuantizer(_TypedGguf):
    """A bits budget spent where the sensitivity says it matters (see allocate)."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        rest = variant[len("gguf-mix"):]
        self.like = rest[1:] if rest.startswith("@") else None
        self.bpw = None if self.like else float(rest[1:])
        self.needs = ("gguf-f16", IMATRIX_VARIANT) + ((self.like,) if self.like else ())

    def _sensitivity(self, ctx: BuildContext) -> dict[str, float]:
        path = ctx.sensitivity
        if path is None or not Path(path).is_file():
            raise QuantizerError(f"{self.variant} needs a sensitivity measurement (quantcompare sensitivity, or "
                                 "compare --sensitivity)")
        doc = json.loads(Path(path).read_text())
        missing = [g for g in doc["groups"] if "kld_increase" not in g]
        if missing:  # a group without a measurement would sit at its lowest type: refuse, never guess
            g = missing[0]
            raise UserError(f"{self.variant}: tensor group {g['group']} has no sensitivity measurement "
                            f"({g.get('error') or 'not scored'}; {len(missing)} group(s) in all): run the sensitivity "
                            "stage again before building a mix")
        return {g["group"]: max(0.0, g["kld_increase"][0]) for g in doc["groups"]}

    def recipe(self, ctx: BuildContext) -> dict:
        sens = None
        if ctx.sensitivity is not None and Path(ctx.sensitivity).is_file():
            sens = hashlib.sha256(json.dumps(sorted(self._sensitivity(ctx).items())).encode()).hexdigest()
        r = {"base": BASE_TYPE, "budget": f"the size of {self.like}" if self.like else f"{self.bpw} bits per parameter",
             "allocation": "greedy by predicted KLD saved per bit (quantizers/gguf_mix.py: allocate)",
             "sensitivity_sha256": sens, "margin_bytes": MARGIN_BYTES}
        if self.like and self.like in ctx.upstream:
            r["budget_bytes"] = ctx.upstream[self.like][1].size_bytes
        return r

    def _levels(self, ctx, groups, fixed):
        sens = self._sensitivity(ctx)
        target = (ctx.upstream[self.like][1].size_bytes if self.like else self.bpw * ctx.source.n_params / 8)
        level = allocate(groups, sens, 8.0 * (target - fixed - MARGIN_BYTES))
        self.target_bytes = int(target)
        ctx.log(f"[{self.variant}] budget {target / 1e6:.1f} MB; predicted {predicted_bytes(groups, level, fixed) / 1e6:.1f} MB")
        return level


def _is_probe(name: str) -> bool:
    return bool(re.fullmatch(r"gguf-probe-(base|token_embd|output|blk\d+-(attn|ffn))", name))


def _is_mix(name: str) -> bool:
    return bool(re.fullmatch(r"gguf-mix-\d+(\.\d+)?", name) or re.fullmatch(r"gguf-mix@gguf-[a-z0-9_]+(-imatrix)?", name))


register_quantizer(variants=("gguf-probe-base", "gguf-probe-blk0-attn"), hidden=True, order=91, matches=_is_probe,
                   make=lambda v, recipe: ProbeQuantizer(v))(ProbeQuantizer)
register_quantizer(variants=("gguf-mix-4.9", "gguf-mix@gguf-q4_k_m"), order=2, matches=_is_mix,
                   make=lambda v, recipe: MixQuantizer(v),
                   summary="a bits budget (gguf-mix-<bpw>, or gguf-mix@<variant> for that variant's size) spent by "
                           "measured sensitivity, llama-quantize --tensor-type-file with the imatrix")(MixQuantizer)

