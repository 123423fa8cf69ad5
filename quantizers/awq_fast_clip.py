"""AutoAWQ's clip search, computed as batched matrix products.

AutoAWQ 0.2.9's `_compute_best_clip` scores each of its 10 clipping ratios with
`(input_feat * q_w).sum(-1)`: a broadcast product materialized as [out channels, 512 tokens, groups,
group size] floats (19 M per 64-channel batch on SmolLM2) and summed, so memory traffic, not arithmetic,
sets its pace. Profiled with py-spy on the default model on a 2-core CPU it was 68% of the calibration
(61% on that one line). The same sums are per-group matrix products, [groups, tokens, k] @ [groups, k,
channels]: this version computes exactly that, with the same grid, the same pseudo-quantizer, the same
error and the same choice, so it picks the same clipping values up to float summation order (a tie
within rounding may fall the other way). Runs inside the AutoAWQ environment (imported by the worker)."""
from __future__ import annotations


def compute_best_clip(self, w, input_feat, n_grid=20, max_shrink=0.5, n_sample_token=512):
    import torch

    assert w.dim() == 2
    co, ci = w.shape
    group = self.group_size if self.group_size > 0 else ci
    x = input_feat.to(device=w.device, dtype=w.dtype).reshape(-1, input_feat.shape[-1])  # AutoAWQ keeps features where they were cached
    x = x.reshape(x.shape[0], -1, group)  # [tokens, groups, k]
    x = x[:: max(1, x.shape[0] // n_sample_token)]
    xg = x.permute(1, 0, 2).contiguous()  # [groups, tokens, k]
    wg = w.reshape(co, -1, group)  # [co, groups, k]
    oc_batch = 256 if co % 256 == 0 else 64
    assert co % oc_batch == 0
    best_all = []
    for b in range(co // oc_batch):
        wb = wg[b * oc_batch:(b + 1) * oc_batch]  # [c, groups, k]
        org_max = wb.abs().amax(dim=-1, keepdim=True)  # [c, groups, 1]
        best = org_max.clone()
        min_errs = torch.ones_like(org_max) * 1e9
        org_out = torch.bmm(xg, wb.permute(1, 2, 0))  # [groups, tokens, c]
        for i_s in range(int(max_shrink * n_grid)):
            max_val = org_max * (1 - i_s / n_grid)
            cur_w = torch.clamp(wb, -max_val, max_val)
            q_w = self.pseudo_quantize_tensor(cur_w)[0]  # quantizes each row of `group` values, shape kept
            cur_out = torch.bmm(xg, q_w.permute(1, 2, 0))
            err = (cur_out - org_out).pow(2).mean(dim=1).t().unsqueeze(-1)  # [c, groups, 1]
            better = err < min_errs
            min_errs[better] = err[better]
            best[better] = max_val[better]
        best_all.append(best)
    return torch.cat(best_all, dim=0)  # [co, groups, 1], as the original returns


def patch_fast_clip(quantizer_cls) -> None:
    if getattr(quantizer_cls._compute_best_clip, "_qc_fast", False):
        return
    compute_best_clip._qc_fast = True
    quantizer_cls._compute_best_clip = compute_best_clip
