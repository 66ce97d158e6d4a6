"""Gemma 3 (text): uses the family's own bidirectional switch, ``use_bidirectional_attention``.

EmbeddingGemma made Gemma 3 bidirectional this way, and transformers builds it in: with the flag
set, attention modules are non-causal, full layers get a full mask and sliding layers get the
symmetric overlay ``|i - j| < sliding_window``, where the config HALVES the window at construction
(``w // 2 + 1``) so the symmetric band spans about the trained ``w`` tokens. ``to_dict`` writes
the un-halved value back, so a saved folder reloads with the same window.

The patch sets that flag (and halves the window itself, as ``__post_init__`` only runs at
construction) instead of ``config.is_causal=False``: ``is_causal=False`` would OR transformers'
inclusive ``|i - j| <= w`` band onto the overlay, one token wider than EmbeddingGemma.
``layer_types`` are never rewritten: sliding layers keep their local rotary base.

``window="keep"``: EmbeddingGemma's halved symmetric window. ``window="full"``: the window becomes
:data:`NO_WINDOW`, so sliding layers see the whole sequence (still with local rotary).
"""

from llm2vec_lite.patches.base import NO_WINDOW, TINY_LLAMA_LIKE, BidirectionalPatch, register_patch


class Gemma3TextPatch(BidirectionalPatch):
    model_type = "gemma3_text"
    window_attr = "sliding_window"
    window_note = "keep: EmbeddingGemma's |i-j| < w//2+1; full: sliding_window=2**30 (layer_types kept)"
    reload_note = "bidirectional (use_bidirectional_attention=true, window round-trips)"
    tiny_kwargs = {
        **TINY_LLAMA_LIKE,
        "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention"],
        "query_pre_attn_scalar": 8,
    }

    def patch_config(self, config, *, window: str) -> None:
        if not getattr(config, "use_bidirectional_attention", False):
            config.use_bidirectional_attention = True
            if config.sliding_window is not None:
                config.sliding_window = config.sliding_window // 2 + 1  # as Gemma3TextConfig.__post_init__
        if window == "full":
            config.sliding_window = NO_WINDOW

    def patch_modules(self, model, *, window: str) -> None:
        for module in model.modules():
            if getattr(module, "is_causal", None) is True:
                module.is_causal = False
            if isinstance(getattr(module, "sliding_window", None), int):  # sliding layers' flash window
                module.sliding_window = None if window == "full" else model.config.sliding_window

    @classmethod
    def config_is_bidirectional(cls, config) -> bool:
        return bool(getattr(config, "use_bidirectional_attention", False))

    @classmethod
    def mark_config(cls, config, *, bidirectional: bool) -> None:
        config.use_bidirectional_attention = bidirectional


register_patch("gemma3_text", Gemma3TextPatch)
