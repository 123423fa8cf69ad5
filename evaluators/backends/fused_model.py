"""The fused decoder behind transformers' causal-LM call surface, so the torch runtimes' scoring and batched
generation code (evaluators/backends/torch_common.py) runs it unchanged: `model(input_ids=...,
attention_mask=..., position_ids=..., past_key_values=..., logits_to_keep=...)`, `get_decoder()`,
`get_output_embeddings()`, `config`, and the parameters of the transformers model whose tensors it reads."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from evaluators.backends.fused_decoder import FusedDecoder, rms_norm, visible


class FusedCausalLM:
    def __init__(self, decoder: FusedDecoder, model) -> None:
        self.decoder, self.hf_model, self.config = decoder, model, model.config

    def parameters(self):
        return self.hf_model.parameters()

    def buffers(self):
        return self.hf_model.buffers()

    def _hidden(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None):
        d = self.decoder
        b, t = input_ids.shape
        past = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device)[None].expand(b, t)
        mask = None
        if attention_mask is not None or past:
            valid = (torch.ones(b, past + t, dtype=torch.bool, device=input_ids.device) if attention_mask is None
                     else attention_mask.bool())
            mask = visible(torch.arange(past, past + t, device=input_ids.device), valid)
        return d.hidden(input_ids, position_ids, mask, past_key_values)

    def __call__(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=False,
                 logits_to_keep: int = 0, **_):
        h, kv = self._hidden(input_ids, attention_mask, position_ids, past_key_values)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return SimpleNamespace(logits=self.decoder.logits(h), past_key_values=kv if use_cache else None)

    def get_decoder(self):
        def run(input_ids, attention_mask=None, position_ids=None, use_cache=False, **_):
            h, _ = self._hidden(input_ids, attention_mask, position_ids)
            return SimpleNamespace(last_hidden_state=rms_norm(h, self.decoder.norm, self.decoder.shape.eps))
        return run

    def get_output_embeddings(self):
        return lambda hidden: torch.nn.functional.linear(hidden, self.decoder.head)
