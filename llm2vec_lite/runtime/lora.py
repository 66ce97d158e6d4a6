"""LoRA adapters for a stage: the peft config, and one dropout draw per shared input.

peft gives every adapted ``Linear`` its own ``lora_dropout`` module. In a Llama-type block the
q, k and v projections read the same tensor, and so do gate and up: seven adapters, seven dropout
masks and seven dropped copies of the input kept for the backward pass, where three inputs exist.
A profile of the supervised stage on SmolLM2-135M put about a fifth of the step in that dropout
(docs/performance.md). :func:`share_lora_dropout` swaps in :class:`SharedInputDropout` modules that remember
the last input they saw model-wide: an adapter that receives the *same tensor object* as the one
before it reuses that dropped copy. The result is what a fused qkv (or gate-up) adapter with
input dropout computes: one mask per distinct input, the same expected update, about half the
dropout time and dropped-copy memory.

On a CPU the masks themselves are drawn more cheaply (:func:`cpu_dropout`): ``bernoulli_`` draws
one random number per element, while four 16-bit slices of one 64-bit draw are as good a uniform
variate for a keep/drop decision. Forward + backward of a dropout over an 8000 x 576 float32 input
took 46 ms through ``F.dropout`` and 17 ms this way on a 2-core AMX Xeon.

Determinism: draws happen in module order, as before, from torch's default generator, so a fixed
seed gives a fixed result, and GradCache's replayed RNG state and gradient checkpointing's
recompute see the same masks.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "SharedInputDropout", "cpu_dropout", "dropout_mask", "lora_config", "scale_adapters", "share_lora_dropout", "with_lora",
]

_LANES = 65536  # values of a 16-bit slice: p is rounded to a multiple of 1/65536


def cpu_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of ``x`` with a mask made from 16-bit slices of 64-bit random words.

    The drop probability is ``round(p * 65536) / 65536`` (0.05 -> 0.0499954) and kept values are
    scaled by the inverse of the keep rate, so the expectation is ``x`` exactly. Off the CPU, or for
    a ``p`` the 16-bit grid cannot hold (below 1/65536, or 1), it is ``F.dropout``.
    """
    return x * dropout_mask(x, p)


def dropout_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """The scaled keep mask :func:`cpu_dropout` multiplies by: 0 or 1/(1-p), shaped like ``like``.

    For callers that keep the mask for their own backward pass (``fused_lora``) instead of the
    dropped tensor. Same random draws as :func:`cpu_dropout` of a tensor of this shape.
    """
    cut = round(p * _LANES)
    if like.device.type != "cpu" or not 0 < cut < _LANES:
        return torch.nn.functional.dropout(torch.ones_like(like), p, training=True)
    n = like.numel()
    words = torch.randint(-(2**63), 2**63 - 1, (math.ceil(n / 4),), dtype=torch.int64)
    keep = words.view(torch.int16)[:n].view(like.shape) >= cut - _LANES // 2  # P(keep) = 1 - cut / 65536
    return keep.to(like.dtype).mul_(_LANES / (_LANES - cut))


def lora_config(recipe, index: int):
    """The peft ``LoraConfig`` of stage ``index`` (the recipe's ``lora`` block with stage overrides)."""
    from peft import LoraConfig

    lora = recipe.lora_for(index)
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,  # "all-linear": every linear layer except the LM head
        bias="none",
    )


def with_lora(model, recipe, index: int):
    """``model`` wrapped by peft with stage ``index``'s adapter.

    peft reads ``model.is_gradient_checkpointing``, an alias transformers 5 deprecates with a
    FutureWarning on every read; the user can do nothing about it, so it is silenced here.
    """
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, lora_config(recipe, index))


class _LastInput:
    """The model-wide memory of the last (input, dropped input) pair."""

    def __init__(self) -> None:
        self.source: torch.Tensor | None = None
        self.dropped: torch.Tensor | None = None
        self.version = -1
        self.grad_mode = False


class SharedInputDropout(torch.nn.Dropout):
    """``nn.Dropout`` that reuses its output when called again on the very same tensor.

    Only identity counts (``x is last``, the same version): a new tensor with equal values gets a
    new mask. The reference to the last input keeps it alive, so its id cannot be recycled.
    """

    def __init__(self, p: float, memory: _LastInput):
        super().__init__(p)
        self._memory = memory

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mem = self._memory
        if mem.source is x and mem.version == x._version and mem.grad_mode == torch.is_grad_enabled():
            return mem.dropped
        out = cpu_dropout(x, self.p)
        mem.source, mem.dropped, mem.version, mem.grad_mode = x, out, x._version, torch.is_grad_enabled()
        return out


def share_lora_dropout(model) -> int:
    """Replace every LoRA dropout of ``model`` by one sharing draws on shared inputs.

    Returns:
        The number of dropout modules replaced (0 when the LoRA dropout is 0: peft uses an
        ``Identity`` then, and there is nothing to share).
    """
    memory = _LastInput()
    replaced = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, torch.nn.ModuleDict):
            continue
        for name, drop in list(drops.items()):
            if type(drop) is torch.nn.Dropout and drop.p > 0:
                shared = SharedInputDropout(drop.p, memory)
                shared.train(drop.training)
                drops[name] = shared
                replaced += 1
    return replaced


def scale_adapters(model, weight: float) -> int:
    """Multiply the scaling of every LoRA adapter of ``model`` by ``weight`` (a stage's ``merge_weight``).

    Merging then adds ``weight`` times the trained change to each base weight, so the merged model
    is the interpolation ``(1 - weight) * input + weight * trained`` of WiSE-FT (Wortsman et al.
    2022): fine-tuned weights pulled back towards the model the stage started from hold up better
    on text unlike the training data. Called right before the merge, so training and the in-stage
    scoring see the full adapter.

    Returns:
        The number of adapters scaled (0 when ``weight`` is 1).
    """
    from peft.tuners.lora.layer import LoraLayer

    if weight == 1:
        return 0
    scaled = 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(weight)  # peft's own: every active adapter of the layer
            scaled += sum(name in module.lora_A for name in module.active_adapters)
    return scaled
