"""MiniCPM-1/2 load onto transformers' Granite classes, with no remote code, and compute MiniCPM.

The reference below is MiniCPM's forward written from its definition in plain torch (embeddings
* scale_emb, RMSNorm, rotary, attention, residual * scale_depth/sqrt(L), final norm, hidden /
(hidden_size/dim_model_base), lm_head), run on the same random weights saved as a MiniCPM folder.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from llm2vec_lite.patches import prepare_config, verify
from llm2vec_lite.patches.minicpm import MiniCPMPatch, minicpm_to_granite
from safetensors.torch import save_file

from llm2vec_lite.errors import PatchError

CFG = {
    **MiniCPMPatch.tiny_minicpm,
    "architectures": ["MiniCPMForCausalLM"],
    "auto_map": {"AutoModelForCausalLM": "modeling_minicpm.MiniCPMForCausalLM"},
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "torch_dtype": "float32",
}


def _random_minicpm_weights(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hidden, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    head_dim = hidden // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * head_dim

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    w = {"model.embed_tokens.weight": rnd(vocab, hidden), "model.norm.weight": 1 + rnd(hidden, scale=0.1)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w |= {
            p + "self_attn.q_proj.weight": rnd(hidden, hidden),
            p + "self_attn.k_proj.weight": rnd(kv, hidden),
            p + "self_attn.v_proj.weight": rnd(kv, hidden),
            p + "self_attn.o_proj.weight": rnd(hidden, hidden),
            p + "mlp.gate_proj.weight": rnd(inter, hidden),
            p + "mlp.up_proj.weight": rnd(inter, hidden),
            p + "mlp.down_proj.weight": rnd(hidden, inter),
            p + "input_layernorm.weight": 1 + rnd(hidden, scale=0.1),
            p + "post_attention_layernorm.weight": 1 + rnd(hidden, scale=0.1),
        }
    if not cfg.get("tie_word_embeddings", True):
        w["lm_head.weight"] = rnd(vocab, hidden)
    return w


def minicpm_reference(
    w: dict, cfg: dict, ids: torch.Tensor, *, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """MiniCPM forward for one sequence ``ids`` (seq,): returns (final hidden (seq, H), logits)."""
    hidden, heads, kv_heads = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    layers, eps = cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    hd, seq = hidden // heads, ids.shape[0]

    def rms(x, weight):
        return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

    def rotate_half(x):
        return torch.cat([-x[..., hd // 2 :], x[..., : hd // 2]], dim=-1)

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)  # (seq, hd/2)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()  # (seq, hd)
    depth = cfg["scale_depth"] / math.sqrt(layers)

    x = w["model.embed_tokens.weight"][ids] * cfg["scale_emb"]  # (seq, H)
    for i in range(layers):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(seq, heads, hd).transpose(0, 1)  # (nh, seq, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(seq, kv_heads, hd).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(seq, kv_heads, hd).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(heads // kv_heads, 0), v.repeat_interleave(heads // kv_heads, 0)
        scores = q @ k.transpose(1, 2) / math.sqrt(hd)  # (nh, seq, seq)
        if causal:
            scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
        attn = (scores.softmax(-1) @ v).transpose(0, 1).reshape(seq, hidden)
        x = x + (attn @ w[p + "self_attn.o_proj.weight"].T) * depth
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        mlp = torch.nn.functional.silu(h @ w[p + "mlp.gate_proj.weight"].T) * (
            h @ w[p + "mlp.up_proj.weight"].T
        )
        x = x + (mlp @ w[p + "mlp.down_proj.weight"].T) * depth
    x = rms(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    logits = (x / (hidden / cfg["dim_model_base"])) @ head.T  # (seq, vocab)
    return x, logits


def _write_minicpm_folder(folder, cfg, tiny_tokenizer):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    weights = _random_minicpm_weights(cfg)
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tiny_tokenizer().save_pretrained(folder)
    return weights


@pytest.mark.parametrize("tied", [True, False])
def test_minicpm_folder_loads_as_granite_and_matches_reference(tmp_path, tiny_tokenizer, tied):
    from llm2vec_lite.modeling import load_model

    cfg = {**CFG, "tie_word_embeddings": tied}
    weights = _write_minicpm_folder(tmp_path / "minicpm", cfg, tiny_tokenizer)
    ids = torch.randint(4, 128, (7,))

    model, _ = load_model(
        tmp_path / "minicpm", head="causal_lm", bidirectional=False, attn_implementation="eager"
    )
    assert model.config.model_type == "granite" and not hasattr(model.config, "auto_map")
    with torch.no_grad():
        out = model(input_ids=ids[None], output_hidden_states=True)
    ref_hidden, ref_logits = minicpm_reference(weights, cfg, ids, causal=True)
    torch.testing.assert_close(out.hidden_states[-1][0], ref_hidden, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.logits[0], ref_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
def test_bidirectional_minicpm_matches_unmasked_reference(tmp_path, tiny_tokenizer, backend):
    from llm2vec_lite.modeling import load_model

    weights = _write_minicpm_folder(tmp_path / "minicpm", CFG, tiny_tokenizer)
    model, tokenizer = load_model(tmp_path / "minicpm", attn_implementation=backend)  # base model, patched
    ids = torch.randint(4, 128, (7,))
    with torch.no_grad():
        hidden = model(input_ids=ids[None]).last_hidden_state[0]
    ref_hidden, _ = minicpm_reference(weights, CFG, ids, causal=False)
    torch.testing.assert_close(hidden, ref_hidden, rtol=1e-4, atol=1e-4)
    assert verify(model, tokenizer).passed


def test_mapping_scalars_follow_minicpm_definitions():
    granite = minicpm_to_granite(
        {
            **CFG,
            "hidden_size": 2304,
            "num_attention_heads": 36,
            "num_hidden_layers": 40,
            "dim_model_base": 256,
            "scale_depth": 1.4,
            "scale_emb": 12,
        }
    )
    assert granite.embedding_multiplier == 12
    assert granite.residual_multiplier == pytest.approx(1.4 / math.sqrt(40))
    assert granite.logits_scaling == pytest.approx(2304 / 256)  # Granite divides logits by it
    assert granite.attention_multiplier == pytest.approx(1 / math.sqrt(2304 / 36))


def test_prepare_config_maps_only_minicpm_folders(tmp_path, tiny_model):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(CFG))
    extra = prepare_config(str(tmp_path / "m"), {})
    assert extra["config"].model_type == "granite"
    assert prepare_config(str(tmp_path / "m"), {"config": object()}) == {}
    tiny_model("llama").save_pretrained(tmp_path / "llama")
    assert prepare_config(str(tmp_path / "llama"), {}) == {}


def test_moe_minicpm_is_refused_with_a_reason():
    with pytest.raises(PatchError, match="num_experts=8"):
        minicpm_to_granite({**CFG, "num_experts": 8})
