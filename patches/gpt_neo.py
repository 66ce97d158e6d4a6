"""GPT-Neo: a hard-coded causal buffer in every attention layer, and absolute positions.

``GPTNeoSelfAttention`` keeps a ``bias`` buffer (lower-triangular; banded for "local" layers) and
applies it on top of whatever mask it is given, so flipping flags is not enough: the patch
replaces the buffer. Global layers get all-True; local layers get all-True for ``window="full"``
or the symmetric band ``|i - j| < window_size`` for ``window="keep"``. Positions come from the mask
as for GPT-2. The buffer is not persistent (transformers rebuilds it causal on load), so a plain
``AutoModel.from_pretrained`` reload is NOT bidirectional: call ``enable_bidirectional`` after
loading (``llm2vec_lite.modeling.load_model`` does). Backends: eager, and flash-attn on GPU
(transformers' flash path has no local window, so local layers are full there).
"""

import torch
from llm2vec_lite.patches.base import BidirectionalPatch, install_positions_from_mask, register_patch


class GPTNeoPatch(BidirectionalPatch):
    model_type = "gpt_neo"
    window_note = "full: local layers see all; keep: local layers symmetric |i-j| < window_size"
    reload_note = "NOT bidirectional (causal buffer is rebuilt on load): call enable_bidirectional"
    reload_bidirectional = False
    reload_left_padding = False
    tiny_kwargs = {
        "vocab_size": 128,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 4,
        "intermediate_size": 64,
        "attention_types": [[["global", "local"], 1]],
        "window_size": 4,
        "max_position_embeddings": 64,
        "resid_dropout": 0.0,
        "embed_dropout": 0.0,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }

    def patch_modules(self, model, *, window: str) -> None:
        super().patch_modules(model, window=window)
        for module in model.modules():
            bias = getattr(module, "bias", None)
            if getattr(module, "attention_type", None) is None or not isinstance(bias, torch.Tensor):
                continue
            n = bias.shape[-1]
            allowed = torch.ones((n, n), dtype=torch.bool, device=bias.device)  # (n, n)
            if module.attention_type == "local" and window == "keep":
                pos = torch.arange(n, device=bias.device)
                allowed = (pos[:, None] - pos[None, :]).abs() < model.config.window_size
            module.bias = allowed.view(1, 1, n, n)  # assigning to a registered buffer keeps it a buffer
        install_positions_from_mask(model.base_model)


register_patch("gpt_neo", GPTNeoPatch)
