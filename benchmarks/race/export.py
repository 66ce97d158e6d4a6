"""Save a model as a plain safetensors folder that transformers 4.44 (llm2vec's pin) can read.

The race trains both sides from the same folder: llm2vec-lite's own loader dequantizes the GGUF
(:func:`llm2vec_lite.modeling.load_model`, causal, unpatched) and ``save_pretrained`` writes it with
transformers 5. Three things in that folder are newer than transformers 4.44 / tokenizers 0.19 read,
and :func:`make_readable_by_transformers4` rewrites them in place:

- ``config.json``: rope settings live in ``rope_parameters``; 4.44 reads ``rope_theta`` (and would
  silently fall back to 10000), and ``dtype`` is called ``torch_dtype``.
- ``tokenizer_config.json``: ``tokenizer_class`` is ``TokenizersBackend`` (a 5.x class); the
  plain ``PreTrainedTokenizerFast`` reads the same ``tokenizer.json``. ``model_input_names`` is
  written so that no ``token_type_ids`` reach a Llama forward.
- ``tokenizer.json``: BPE merges are ``[left, right]`` pairs since tokenizers 0.20; 0.19 reads
  ``"left right"`` strings (byte-level BPE tokens hold no spaces, so the join is lossless).

``export_model`` records what it did in ``race-export.json``, so a second race reuses the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MARKER = "race-export.json"


def make_readable_by_transformers4(folder: Path) -> list[str]:
    """Rewrite the three 5.x-only spellings (module docstring); return what was changed."""
    changed = []
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    rope = cfg.get("rope_parameters") or {}
    if "rope_theta" not in cfg and "rope_theta" in rope:
        cfg["rope_theta"] = rope["rope_theta"]
        changed.append("config.rope_theta")
    if "torch_dtype" not in cfg and "dtype" in cfg:
        cfg["torch_dtype"] = cfg["dtype"]
        changed.append("config.torch_dtype")
    cfg_path.write_text(json.dumps(cfg, indent=2))

    tc_path = folder / "tokenizer_config.json"
    if tc_path.exists():
        tc = json.loads(tc_path.read_text())
        if tc.get("tokenizer_class") not in (None, "PreTrainedTokenizerFast") and not tc["tokenizer_class"].endswith("Fast"):
            tc["tokenizer_class"] = "PreTrainedTokenizerFast"
            changed.append("tokenizer_config.tokenizer_class")
        if "model_input_names" not in tc:
            tc["model_input_names"] = ["input_ids", "attention_mask"]
            changed.append("tokenizer_config.model_input_names")
        tc_path.write_text(json.dumps(tc, indent=2))

    tj_path = folder / "tokenizer.json"
    if tj_path.exists():
        tj = json.loads(tj_path.read_text(encoding="utf-8"))
        merges = tj.get("model", {}).get("merges")
        if merges and isinstance(merges[0], list):
            if any(" " in part for pair in merges for part in pair):
                raise ValueError(f"{tj_path}: a BPE merge holds a space; it cannot be written as 'left right'")
            tj["model"]["merges"] = [" ".join(pair) for pair in merges]
            tj_path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
            changed.append("tokenizer.merges")
    return changed


def _source_id(path: str) -> dict:
    st = os.stat(path)
    return {"source": str(path), "size": st.st_size, "mtime": int(st.st_mtime)}


def export_model(source: str, folder: Path) -> tuple[Path, bool]:
    """Dequantize/load ``source`` with llm2vec-lite's loader and save it to ``folder``.

    Returns ``(folder, reused)``; a folder whose ``race-export.json`` names the same source file
    (path, size, mtime) is reused as it is.
    """
    marker = folder / MARKER
    want = _source_id(source) if os.path.exists(source) else {"source": source}
    if marker.exists() and json.loads(marker.read_text()).get("from") == want:
        return folder, True
    from llm2vec_lite.modeling import load_model

    model, tok = load_model(source, head="causal_lm", bidirectional=False, dtype="float32")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    changed = make_readable_by_transformers4(folder)
    marker.write_text(json.dumps({"from": want, "rewritten": changed}, indent=1))
    return folder, False
