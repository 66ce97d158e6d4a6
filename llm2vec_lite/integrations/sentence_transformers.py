"""Hand an :class:`~llm2vec_lite.encoder.Encoder` to sentence-transformers.

``Encoder.save_pretrained`` already writes the files sentence-transformers reads (modules.json,
sentence_bert_config.json, 1_Pooling/config.json, 2_Normalize/, config_sentence_transformers.json
with the instructions as ``prompts``), using only stock modules: no ``trust_remote_code`` and no
llm2vec-lite needed on the loading side. This module adds the in-process shortcut.

What agrees (tests/integrations/test_sentence_transformers.py checks it, cosine >= 0.9999):

- every pooling mode without an instruction, for tokenizers that add no BOS (SmolLM2, Qwen,
  GPT-2 style). For last-token pooling the saved tokenizer appends the EOS itself, so both sides
  read the same token.
- instructions through ``prompts`` (``encode_query`` / ``prompt_name="query"``) when the
  instruction tokenizes the same alone as at the start of the text (it ends in a newline or a
  token boundary). sentence-transformers excludes ``len(tokenize(prompt))`` tokens; llm2vec-lite
  excludes tokens by character offsets, which is exact when a BPE merge spans the boundary.

What does not: a tokenizer that adds a BOS (Llama, Gemma, Mistral) without an instruction -
sentence-transformers pools the BOS, llm2vec-lite leaves it out (as LLM2Vec does: its hidden state
is an attention sink with a large norm). An empty string gives a zero vector there and a vector
of the EOS token here.

Usage::

    from llm2vec_lite.integrations.sentence_transformers import to_sentence_transformer
    st = to_sentence_transformer(encoder)          # a SentenceTransformer with the same vectors
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from llm2vec_lite.encoder import Encoder


def to_sentence_transformer(
    encoder: Encoder, folder: str | os.PathLike | None = None, *, device: str | None = None
) -> SentenceTransformer:
    """Save ``encoder`` (to ``folder`` or a temporary folder) and load it as a SentenceTransformer.

    Args:
        encoder: the encoder to convert.
        folder: where to save; a temporary folder (kept for the process lifetime) when ``None``.
        device: device for the SentenceTransformer (default: the encoder's).

    Returns:
        A ``SentenceTransformer`` giving the same vectors as ``encoder.encode`` (see the module
        docstring for the cases that differ).
    """
    from sentence_transformers import SentenceTransformer

    if folder is None:
        folder = tempfile.mkdtemp(prefix="llm2vec_lite_st_")
    encoder.save_pretrained(folder)
    return SentenceTransformer(os.fspath(folder), device=device or str(encoder.device))


__all__ = ["to_sentence_transformer"]
