"""``llm2vec-lite patches`` and ``llm2vec-lite patches verify`` end to end on a tiny saved folder."""

from __future__ import annotations

import json

from llm2vec_lite.patches import supported_architectures

from llm2vec_lite.cli import main


def test_patches_lists_every_architecture_with_backends(capsys):
    assert main(["patches"]) == 0
    out = capsys.readouterr().out
    for model_type in supported_architectures():
        assert model_type in out
    gemma2_line = next(line for line in out.splitlines() if line.startswith("gemma2 "))
    assert "eager" in gemma2_line and "flex_attention" in gemma2_line and "sdpa" not in gemma2_line


def _saved_folder(tmp_path, tiny_model, tiny_tokenizer):
    folder = tmp_path / "tiny-llama"
    tiny_model("llama", "sdpa").save_pretrained(folder)  # saved causal, as a hub checkpoint would be
    tiny_tokenizer().save_pretrained(folder)
    return folder


def test_verify_passes_on_a_patched_folder_and_prints_json(tmp_path, tiny_model, tiny_tokenizer, capsys):
    folder = _saved_folder(tmp_path, tiny_model, tiny_tokenizer)
    assert main(["patches", "verify", str(folder), "--attn-implementation", "sdpa", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["attn_implementation"] == "sdpa" and report["inputs"] == "tokenizer"


def test_verify_exits_1_when_the_model_stays_causal(tmp_path, tiny_model, tiny_tokenizer, capsys):
    folder = _saved_folder(tmp_path, tiny_model, tiny_tokenizer)
    assert main(["patches", "verify", str(folder), "--causal"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "first-token change" in out
