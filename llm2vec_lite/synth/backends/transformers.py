"""A local transformers model as a generator (the default backend; fine for small models and CPUs).

The model is loaded causal (no bidirectional patch: it generates) through
:func:`llm2vec_lite.modeling.load_model`, so everything a recipe accepts works here: a local
folder, a hub id, a ``.gguf`` file, a ``package:`` path. Prompts of a batch are left-padded and
sampled together with temperature and top-p. ``torch.manual_seed(seed)`` before each call makes
a run repeatable: the same config and seed give the same batches and so the same answers.
With ``chat: true`` prompts go through the tokenizer's chat template when it has one.
"""

from __future__ import annotations

from typing import Any

from llm2vec_lite.synth.backends import register_backend
from llm2vec_lite.synth.backends.base import Backend


class TransformersBackend(Backend):
    """Batched sampling with ``model.generate`` (see the module docstring)."""

    def __init__(self, settings: Any, model: Any = None, tokenizer: Any = None):
        super().__init__(settings)
        self.model, self.tokenizer = model, tokenizer  # tests pass a tiny model in

    def start(self) -> None:
        """Load the model and tokenizer (unless given)."""
        if self.model is not None:
            return
        from llm2vec_lite.modeling import load_model

        s = self.settings
        self.model, self.tokenizer = load_model(
            s.model, head="causal_lm", dtype=s.dtype, gguf_file=s.gguf_file, bidirectional=False
        )
        self.model.eval()

    def _format(self, prompt: str) -> str:
        tok = self.tokenizer
        if self.settings.chat and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def generate(self, prompts: list[str], *, seed: int, stop_at_newline: bool = False) -> list[str]:
        import torch

        s, tok = self.settings, self.tokenizer
        texts = [self._format(p) for p in prompts]
        tok.padding_side = "left"  # generation continues at the right end of every row
        chat = self.settings.chat and getattr(tok, "chat_template", None)
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
        batch = {k: v.to(self.model.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        kwargs: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "pad_token_id": tok.pad_token_id}
        if s.temperature > 0:
            kwargs.update(do_sample=True, temperature=s.temperature, top_p=s.top_p)
        else:
            kwargs.update(do_sample=False)
        if stop_at_newline:
            kwargs["stopping_criteria"] = [_line_stop(tok, batch["input_ids"].shape[1])]
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**batch, **kwargs)  # (batch, prompt + new tokens)
        new = out[:, batch["input_ids"].shape[1] :]
        return tok.batch_decode(new, skip_special_tokens=True)

    def close(self) -> None:
        self.model = None


def _line_stop(tokenizer: Any, prompt_len: int):
    """A stopping criterion: a row is done once its new text has a finished answer line.

    A preamble line ("Sure, here is a passage:") does not count, so the answer after it is
    still generated (:func:`~llm2vec_lite.synth.filters.has_answer_line`).
    """
    import torch
    from transformers import StoppingCriteria

    from llm2vec_lite.synth.filters import has_answer_line

    class LineStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):  # -> (batch,) bool
            new = tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([has_answer_line(t) for t in new], device=input_ids.device)

    return LineStop()


register_backend("transformers", TransformersBackend)
