"""Run an :class:`~llm2vec_lite.encoder.Encoder` under MTEB 2.x.

MTEB calls ``model.encode(dataloader, task_metadata=..., hf_split=..., hf_subset=...,
prompt_type=...)`` and expects an (n, dim) array back. This adapter gathers the texts of the
whole dataloader first, so the encoder can sort all of them by length (MTEB's own batches are in
dataset order), and maps MTEB's prompt types to instructions: ``query`` to
``query_instruction``, ``document`` to ``document_instruction``; symmetric tasks (STS,
clustering: no prompt type) use ``query_instruction`` for both sides, as E5-mistral and LLM2Vec
evaluate them, unless ``symmetric_instruction`` says otherwise.

Usage::

    import mteb
    from llm2vec_lite import Encoder
    from llm2vec_lite.integrations.mteb import MTEBEncoder

    model = MTEBEncoder(Encoder.from_pretrained("out/final"))
    results = mteb.evaluate(model, mteb.get_tasks(tasks=["STSBenchmark"]), cache=None)

References: Muennighoff et al. 2023, "MTEB: Massive Text Embedding Benchmark", arXiv:2210.07316;
the protocol is ``mteb.models.models_protocols.EncoderProtocol``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder

if TYPE_CHECKING:
    from llm2vec_lite.encoder import Encoder

_UNSET: Any = object()


class MTEBEncoder(AbsEncoder):
    """MTEB-protocol wrapper around an :class:`~llm2vec_lite.encoder.Encoder`.

    Args:
        encoder: the encoder to evaluate.
        query_instruction: instruction for ``prompt_type == "query"``; default: the encoder's.
        document_instruction: instruction for ``prompt_type == "document"``; default: the encoder's.
        symmetric_instruction: instruction for tasks without a prompt type (STS, clustering,
            classification); default: ``query_instruction``.
        batch_size: default batch size when MTEB does not pass one.

    Example:
        >>> model = MTEBEncoder(enc, query_instruction="Instruct: Retrieve semantically similar text.\\nQuery: ")
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        query_instruction: str | None = _UNSET,
        document_instruction: str | None = _UNSET,
        symmetric_instruction: str | None = _UNSET,
        batch_size: int = 32,
    ) -> None:
        self.encoder = encoder
        self.query_instruction = (
            encoder.query_instruction if query_instruction is _UNSET else query_instruction
        )
        self.document_instruction = (
            encoder.document_instruction if document_instruction is _UNSET else document_instruction
        )
        self.symmetric_instruction = (
            self.query_instruction if symmetric_instruction is _UNSET else symmetric_instruction
        )
        self.batch_size = batch_size

    def instruction_for(self, prompt_type: Any) -> str | None:
        """The instruction used for MTEB's ``prompt_type`` (``query``, ``document`` or ``None``)."""
        kind = getattr(prompt_type, "value", prompt_type)
        if kind == "query":
            return self.query_instruction
        if kind == "document":
            return self.document_instruction
        return self.symmetric_instruction

    def encode(
        self,
        inputs,
        *,
        task_metadata=None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        prompt_type=None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Encode every text of the dataloader ``inputs``: (n, dim) float32, unit length.

        Raises:
            ValueError: If a batch carries no ``text`` column (image or audio tasks).
        """
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise ValueError(
                    f"MTEBEncoder only encodes text; the batch has columns {sorted(batch)}. "
                    "Pick text tasks (modalities=['text'])."
                )
            texts.extend(batch["text"])
        return self.encoder.encode(
            texts,
            batch_size=int(kwargs.get("batch_size") or self.batch_size),
            instruction=self.instruction_for(prompt_type),
            normalize=True,
            convert_to="numpy",
            show_progress=kwargs.get("show_progress_bar"),
        )


__all__ = ["MTEBEncoder"]
