"""The shared mechanism that makes a transformers 5.x decoder attend both ways, plus the registry.

How it works (details and the per-family table in docs/patches.md):

1. ``config.is_causal = False``. ``masking_utils.create_causal_mask`` and
   ``create_sliding_window_causal_mask`` read it and build the bidirectional (padding-only) mask,
   or the symmetric sliding-window mask, for every attention backend. The ``merge_with_config_defaults``
   decorator on each base model's ``forward`` also copies it into an ``is_causal`` kwarg that reaches
   the attention function, so the flag survives ``save_pretrained`` + plain ``from_pretrained``.
2. ``module.is_causal = False`` on every attention module. sdpa and flash read it when no mask was
   materialized (no padding): without this step a batch with no padding would silently run causal.
3. ``window``: ``"full"`` removes sliding windows (the window attribute gets ``None`` where the
   family accepts it, else :data:`NO_WINDOW`, so layer types and their rotary settings stay as they
   are); ``"keep"`` keeps each window but makes it symmetric.

A family module subclasses :class:`BidirectionalPatch`, changes only what differs, and ends with
``register_patch("llama", LlamaPatch)``. The registry test in ``tests/patches/`` then builds a tiny
random model from :meth:`BidirectionalPatch.tiny_config` and checks it on every backend.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, ClassVar

import torch

from llm2vec_lite.errors import PatchError, UnsupportedArchitectureError

logger = logging.getLogger(__name__)

WINDOWS = ("full", "keep")

# "No window" for families whose sliding layers need an int: larger than any sequence, so
# masks, flash's window_size and sdpa's mask-skip test all behave as for full attention.
NO_WINDOW = 2**30

# Defaults for the tiny random models the tests build: small enough to run every family on every
# backend in seconds on a CPU; dropout off so train/eval modes agree.
TINY_LLAMA_LIKE: dict[str, Any] = {
    "vocab_size": 128,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 64,
    "attention_dropout": 0.0,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

_REGISTRY: dict[str, type[BidirectionalPatch]] = {}


class BidirectionalPatch:
    """Make one architecture family bidirectional: the default mechanism plus per-family hooks.

    Subclasses set :attr:`model_type` and override only what their family needs.

    Attributes:
        model_type: the ``config.model_type`` this patch handles (the registry key).
        window_attr: config attribute that holds the sliding window, or ``None`` for families
            without one.
        window_off: value written to ``window_attr`` for ``window="full"`` (``None`` where the
            family's code treats ``None`` as "no window", else :data:`NO_WINDOW`).
        window_note: one line for docs and ``llm2vec-lite patches``: what ``full``/``keep`` mean.
        reload_note: what holds after ``save_pretrained`` + plain ``AutoModel.from_pretrained``.
        reload_bidirectional: a plain reload (no llm2vec-lite code) is bidirectional.
        reload_left_padding: a plain reload also gives left-padding-invariant outputs.
        tiny_kwargs: config kwargs of the tiny random model used in tests.
    """

    model_type: ClassVar[str] = ""
    window_attr: ClassVar[str | None] = None
    window_off: ClassVar[Any] = NO_WINDOW
    window_note: ClassVar[str] = "no sliding window"
    reload_note: ClassVar[str] = "bidirectional (config.is_causal=false)"
    reload_bidirectional: ClassVar[bool] = True
    reload_left_padding: ClassVar[bool] = True
    tiny_kwargs: ClassVar[dict[str, Any]] = TINY_LLAMA_LIKE

    def apply(self, model, *, window: str) -> None:
        """Patch ``model`` (an unwrapped transformers ``PreTrainedModel``) in place."""
        self.patch_config(model.config, window=window)
        self.patch_modules(model, window=window)

    def patch_config(self, config, *, window: str) -> None:
        """Route mask creation to the bidirectional masks and drop the window if asked."""
        config.is_causal = False
        if window == "full" and self.window_attr and getattr(config, self.window_attr, None) is not None:
            setattr(config, self.window_attr, self.window_off)

    def patch_modules(self, model, *, window: str) -> None:
        """Clear ``is_causal`` on attention modules (and their flash window for ``window="full"``)."""
        for module in model.modules():
            if getattr(module, "is_causal", None) is True:
                module.is_causal = False
            if window == "full" and self.window_attr and isinstance(getattr(module, "sliding_window", None), int):
                module.sliding_window = None

    @classmethod
    def config_is_bidirectional(cls, config) -> bool:
        """True when ``config`` (as saved) asks for bidirectional attention."""
        return getattr(config, "is_causal", True) is False

    @classmethod
    def mark_config(cls, config, *, bidirectional: bool) -> None:
        """Make ``config`` say ``bidirectional`` the way this family reads it on a plain reload."""
        config.is_causal = not bidirectional

    @classmethod
    def tiny_config(cls, **overrides: Any):
        """A config for a tiny random model of this family (tests and docs examples)."""
        from transformers import AutoConfig

        return AutoConfig.for_model(cls.model_type, **{**cls.tiny_kwargs, **overrides})

    @classmethod
    def model_class(cls):
        """The transformers base-model class this family loads as (for listing backends)."""
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        return MODEL_MAPPING[type(cls.tiny_config())]

    @classmethod
    def backends(cls) -> list[str]:
        """Attention backends transformers supports for this family: eager plus the flagged ones."""
        model_cls = cls.model_class()
        flags = (
            ("sdpa", "_supports_sdpa"),
            ("flex_attention", "_supports_flex_attn"),
            ("flash_attention_2", "_supports_flash_attn"),
        )
        return ["eager"] + [name for name, flag in flags if getattr(model_cls, flag, False)]

    @classmethod
    def prepare_config(cls, path: str, config_dict: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Extra ``from_pretrained`` kwargs for checkpoints of this ``model_type`` (default: none)."""
        return {}


def register_patch(model_type: str, patch_cls: type[BidirectionalPatch]) -> None:
    """Register ``patch_cls`` for ``config.model_type == model_type``.

    Raises:
        PatchError: If ``patch_cls`` is not a :class:`BidirectionalPatch` subclass, its
            ``model_type`` disagrees, or ``model_type`` is already registered.
    """
    if not (inspect.isclass(patch_cls) and issubclass(patch_cls, BidirectionalPatch)):
        raise PatchError(f"register_patch({model_type!r}, {patch_cls!r}): expected a BidirectionalPatch subclass.")
    if patch_cls.model_type != model_type:
        raise PatchError(
            f"register_patch({model_type!r}, {patch_cls.__name__}): the class says "
            f"model_type={patch_cls.model_type!r}; set it to {model_type!r}."
        )
    if model_type in _REGISTRY:
        where = inspect.getsourcefile(_REGISTRY[model_type]) or _REGISTRY[model_type].__module__
        raise PatchError(
            f"patch {model_type!r} is already registered ({where}); each model_type has one patch."
        )
    _REGISTRY[model_type] = patch_cls


def registered_patches() -> list[str]:
    """The registered ``model_type`` names, sorted."""
    return sorted(_REGISTRY)


def get_patch(model_type: str) -> BidirectionalPatch:
    """The patch for ``model_type``.

    Raises:
        UnsupportedArchitectureError: If ``model_type`` has no registered patch.
    """
    try:
        return _REGISTRY[model_type]()
    except KeyError:
        raise UnsupportedArchitectureError(str(model_type), registered_patches()) from None


def check_window(window: str) -> str:
    """Return ``window`` or raise ``ValueError`` naming the valid choices."""
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}. Valid: {', '.join(WINDOWS)} (see docs/patches.md).")
    return window


def unwrap_model(model):
    """The transformers ``PreTrainedModel`` inside ``model`` (itself, or under a peft wrapper).

    Raises:
        PatchError: If there is no transformers model inside.
    """
    from transformers import PreTrainedModel

    if hasattr(model, "get_base_model"):  # peft PeftModel
        model = model.get_base_model()
    if isinstance(model, PreTrainedModel):
        return model
    if isinstance(model, torch.nn.Module):
        for module in model.modules():
            if isinstance(module, PreTrainedModel):
                return module
    raise PatchError(
        f"enable_bidirectional needs a transformers PreTrainedModel (or a peft wrapper of one); "
        f"got {type(model).__name__}."
    )


def _positions_from_mask(module, args, kwargs):
    """Forward pre-hook: ``position_ids`` = rank of each token among the real ones (left padding)."""
    if kwargs.get("position_ids") is not None:
        return None
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return None
    ids = kwargs.get("input_ids", args[0] if args else None)
    ref = ids if ids is not None else kwargs.get("inputs_embeds")
    if ref is None:
        return None
    q_len = ref.shape[1]
    # Under a cache the mask covers past + new tokens; the new ones are the last q_len columns.
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -q_len:]  # (batch, q_len)
    kwargs["position_ids"] = positions.to(ref.device)
    return args, kwargs


def install_positions_from_mask(base_model) -> None:
    """Make a model with absolute position embeddings count positions from the attention mask.

    transformers numbers positions 0..seq-1 whatever the padding, which is fine for rotary models
    (only distances matter) but shifts learned absolute positions under left padding. Idempotent.
    """
    if getattr(base_model, "_llm2vec_positions_hook", None) is not None:
        return
    handle = base_model.register_forward_pre_hook(_positions_from_mask, with_kwargs=True)
    base_model._llm2vec_positions_hook = handle
