"""GPT-2: learned absolute position embeddings, so left padding needs position ids from the mask.

transformers numbers positions ``0..seq-1`` whatever the padding. Rotary models do not care (only
distances enter attention), but GPT-2 adds ``wpe[position]`` to each token, so under left padding
every real token would get a shifted position and a different output. The patch installs a forward
pre-hook on ``GPT2Model`` that sets ``position_ids = cumsum(attention_mask) - 1`` when the caller
gives none. The hook lives on the module, not in ``config.json``: after ``save_pretrained`` + plain
``AutoModel.from_pretrained`` the model is bidirectional and right padding is exact, but left
padding needs ``enable_bidirectional`` again (or explicit ``position_ids``).
"""

from llm2vec_lite.patches.base import BidirectionalPatch, install_positions_from_mask, register_patch


class GPT2Patch(BidirectionalPatch):
    model_type = "gpt2"
    reload_note = "bidirectional; left padding exact only after enable_bidirectional (position-id hook)"
    reload_left_padding = False
    tiny_kwargs = {
        "vocab_size": 128,
        "n_embd": 32,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 64,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }

    def patch_modules(self, model, *, window: str) -> None:
        super().patch_modules(model, window=window)
        install_positions_from_mask(model.base_model)


register_patch("gpt2", GPT2Patch)
