"""Logits and timed greedy decoding for any PyTorch causal LM (transformers, AutoAWQ), CPU or GPU."""
from __future__ import annotations

import time

import numpy as np

from evaluators.backends.base import Generation, Runtime
from evaluators.kld import RowLogprobs, SparseLogprobs, TopK


def package_versions(*names: str, optional: tuple[str, ...] = ("triton",)) -> dict[str, str]:
    """Versions of the packages a runtime ran with; `optional` ones only where installed."""
    from importlib import metadata

    out = {p: metadata.version(p) for p in names}
    for p in optional:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


class TorchDecodeMixin(Runtime):
    """Needs self.model (an HF causal LM), self.torch and self.device."""

    def _sync(self) -> None:
        if self.device != "cpu":  # every GPU of the cell (a model split by layer spans several)
            for i in range(self.torch.cuda.device_count()):
                self.torch.cuda.synchronize(i)

    def logits(self, ids: np.ndarray, keep_from: int = 0) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None].to(self.device)
            out = self.model(input_ids=x, use_cache=False, logits_to_keep=len(ids) - keep_from)
            return out.logits[0].float().cpu().numpy()

    def _rows_on_device(self) -> bool:
        return str(self.device) != "cpu"

    def row_logprobs(self, ids: np.ndarray, keep_from: int = 0, top_k: int = 0):
        """On a GPU: the logits stay there for the row reductions (base.Runtime.row_logprobs)."""
        if not self._rows_on_device():
            return super().row_logprobs(ids, keep_from, top_k)
        from evaluators.kld import rows_on_gpu

        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.asarray(ids, dtype=np.int64))[None].to(self.device)
            out = self.model(input_ids=x, use_cache=False, logits_to_keep=len(ids) - keep_from)
            return rows_on_gpu(out.logits[0], top_k, device=str(out.logits.device))

    def generate(self, prompt: list[int], n_new: int) -> Generation:
        return self.generate_batch([prompt], n_new)

    def prompt_logprobs(self, seqs: list[list[int]], k: int, last: int | list[int] | None = None) -> list[SparseLogprobs]:
        """Log-likelihood requests scored together: left-padded into one batch (position ids from the
        mask, padding masked out); the output head runs only on each sequence's last positions. Same
        numbers as one sequence at a time, up to float rounding."""
        if last is None or len(seqs) == 1:
            return super().prompt_logprobs(seqs, k, last)
        torch = self.torch
        lasts = last if isinstance(last, list) else [last] * len(seqs)
        inputs = [list(s[:-1]) for s in seqs]
        width = max(len(x) for x in inputs)
        ids = torch.zeros((len(inputs), width), dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for i, x in enumerate(inputs):
            ids[i, width - len(x):] = torch.tensor(x, dtype=torch.long)
            mask[i, width - len(x):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        rows_of = [min(n, len(x)) for n, x in zip(lasts, inputs)]
        kw = dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=pos.to(self.device),
                  use_cache=False)
        with torch.inference_mode():
            try:  # the output layer only where a continuation is scored
                if getattr(self, "_whole_model_only", False):
                    raise AttributeError
                hidden = self.model.get_decoder()(**kw).last_hidden_state
                picked = torch.cat([hidden[i, width - r:] for i, r in enumerate(rows_of)])
                logits = self.model.get_output_embeddings()(picked).float().cpu().numpy()
            except (AttributeError, TypeError, NotImplementedError):
                # models whose layers work only through the whole model's forward (compressed-tensors
                # decompresses in hooks there): the last max(rows) positions of every sequence
                self._whole_model_only = True
                keep = max(rows_of)
                out = self.model(**kw, logits_to_keep=keep).logits.float().cpu().numpy()
                logits = np.concatenate([out[i, keep - r:] for i, r in enumerate(rows_of)])
        res, at = [], 0
        for s, r in zip(seqs, rows_of):
            rows = RowLogprobs.from_logits(logits[at:at + r])
            at += r
            top = TopK.from_rows(rows, k)
            tgt = np.asarray(s[len(s) - r:], dtype=np.int64)
            res.append(SparseLogprobs(rows.at(tgt), top.ids.astype(np.int64), top.logp.astype(np.float64)))
        return res

    def weight_bytes(self) -> int | None:
        """Bytes of parameters and buffers (AWQ's packed weights are buffers), tied tensors counted once."""
        seen, total = set(), 0
        for t in list(self.model.parameters()) + list(self.model.buffers()):
            # a tensor-parallel shard (DTensor) counts with its whole size: the roofline adds the GPUs' bandwidths
            key = id(t) if hasattr(t, "to_local") else t.data_ptr()
            if key not in seen:
                seen.add(key)
                total += t.numel() * t.element_size()
        return total

    GEN_BATCH = 16  # prompts generated together (left-padded)
    GEN_BATCH_GPU = 64  # on a GPU: a step of 16 sequences leaves most of it idle

    def generate_many(self, prompts: list[list[int]], n_new: int) -> list[list[int]]:
        """Greedy continuations in left-padded batches of prompts of similar length: position ids from the
        mask, padding masked out, the KV cache grown one token per step."""
        torch = self.torch
        out: list = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
        with torch.inference_mode():
            n = self.GEN_BATCH if str(self.device) == "cpu" else self.GEN_BATCH_GPU
            for s in range(0, len(order), n):
                idx = order[s:s + n]
                width = max(len(prompts[i]) for i in idx)
                ids = torch.zeros((len(idx), width), dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    ids[r, width - len(prompts[i]):] = torch.tensor([int(t) for t in prompts[i]])
                    mask[r, width - len(prompts[i]):] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                pos = (mask.cumsum(-1) - 1).clamp(min=0)
                o = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
                nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                steps = [nxt]
                for _ in range(n_new - 1):
                    mask = torch.cat([mask, mask.new_ones((len(idx), 1))], dim=1)
                    pos = pos[:, -1:] + 1
                    o = self.model(input_ids=nxt, attention_mask=mask, position_ids=pos, past_key_values=o.past_key_values,
                                   use_cache=True)
                    nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                    steps.append(nxt)
                got = torch.cat(steps, dim=1).cpu().tolist()
                for r, i in enumerate(idx):
                    out[i] = [int(t) for t in got[r]]
        return out

    def generate_batch(self, prompts: list[list[int]], n_new: int) -> Generation:
        """Greedy decoding of equal-length prompts together; tokens of the first sequence returned,
        n_decode counts the decode steps (tokens per sequence)."""
        torch = self.torch
        with torch.inference_mode():
            x = torch.tensor(prompts, dtype=torch.long, device=self.device)
            self._sync()
            t0 = time.perf_counter()
            out = self.model(input_ids=x, use_cache=True)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            first = int(nxt[0, 0])
            self._sync()
            t1 = time.perf_counter()
            pkv = out.past_key_values
            tokens = [first]
            steps = []
            for _ in range(n_new):
                out = self.model(input_ids=nxt, past_key_values=pkv, use_cache=True)
                pkv = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                steps.append(nxt)
            self._sync()
            t2 = time.perf_counter()
            tokens += [int(s[0, 0]) for s in steps]
        return Generation(tokens, t1 - t0, t2 - t1, n_new)
