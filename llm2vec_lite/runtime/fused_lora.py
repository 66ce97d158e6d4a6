"""Sibling LoRA layers trained through one product: q/k/v as one, gate/up as one.

In a Llama-type block q, k and v read the same tensor, and so do gate and up. peft runs each
adapted ``Linear`` on its own: per layer a base matmul, two rank-r products, a scale and an add,
and the same again in the backward pass, so a SmolLM2 step issues thousands of thin matmuls
(576 x 16 LoRA products, 576 x 192 key/value projections) that run far below the CPU's matmul
rate. Profiling the supervised stage (docs/performance.md) put the matmuls alone at about 16% of
the bf16 peak, two thirds of the calls being LoRA products.

:func:`fused_lora` routes each group of siblings through one autograd function while a stage
trains: one base product over the concatenated weights (576 x 960 for SmolLM2's q/k/v), one
``A`` product over the concatenated adapters (576 x 48), one ``B`` product per member, and in the
backward one product for the input gradient of the base and one for the adapters. The result is
what peft computes (the same weights, the same rank-r update per layer), in fewer and fatter
matmuls, with the input cast to the compute dtype once per group instead of once per layer.

Base weights become views of one concatenated tensor for the length of the block (no extra
copy); on exit each gets its own storage again, so merging and saving see ordinary weights.
Anything the fused path does not cover (DoRA and other peft variants, several active adapters,
merged or disabled adapters, a sibling called on another input) runs peft's forward. In eval mode
(the scoring of ``eval_every`` inside a stage) the fused path runs without dropout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from llm2vec_lite.runtime.lora import dropout_mask

__all__ = ["SIBLINGS", "fused_lora", "lora_groups"]

# Names of LoRA layers that read the same input inside one parent module.
SIBLINGS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj"),
    ("gate_proj", "up_proj"),
    ("query", "key", "value"),
    ("w1", "w3"),
)


def _fusable(module: torch.nn.Module) -> str | None:
    """The adapter name when ``module`` is a plain peft LoRA ``Linear`` the fused path covers."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    base = getattr(module, "base_layer", None)
    # exactly peft's float Linear: quantized layers (bitsandbytes, ...) subclass nn.Linear too
    if type(module) is not LoraLinear or type(base) is not torch.nn.Linear or not base.weight.is_floating_point():
        return None
    active = getattr(module, "active_adapters", ())
    if len(active) != 1 or active[0] not in module.lora_A:
        return None
    name = active[0]
    if name in getattr(module, "lora_variant", {}) or getattr(module, "fan_in_fan_out", False):
        return None
    if module.lora_B[name].bias is not None:  # peft's lora_bias
        return None
    drop = module.lora_dropout[name]
    if not isinstance(drop, torch.nn.Identity | torch.nn.Dropout):
        return None
    if base.weight.requires_grad:  # full training of the base: leave it to peft
        return None
    return name


def lora_groups(model: torch.nn.Module) -> list[list[torch.nn.Module]]:
    """LoRA ``Linear`` layers of ``model`` grouped by shared input; layers without siblings alone.

    Members of a group have the same input size and adapter rank; a named sibling set whose members
    differ there is split into singletons.
    """
    groups: list[list[torch.nn.Module]] = []
    for parent in model.modules():
        fusable = {n: (m, adapter) for n, m in parent.named_children() if (adapter := _fusable(m))}
        taken: set[str] = set()
        for names in SIBLINGS:
            present = [n for n in names if n in fusable]
            if len(present) < 2:
                continue
            shapes = {(m.base_layer.in_features, m.lora_A[adapter].out_features)
                      for m, adapter in (fusable[n] for n in present)}
            if len(shapes) == 1:
                groups.append([fusable[n][0] for n in present])
                taken.update(present)
        groups.extend([m] for n, (m, _) in fusable.items() if n not in taken)
    return groups


class _GroupProduct(torch.autograd.Function):
    """Base and LoRA products of a group of layers sharing one input, in one forward/backward."""

    @staticmethod
    def forward(ctx, x, weight, bias, a, scales, p, sizes, ranks, *bs):  # noqa: D102
        dev = x.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else weight.dtype
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1]).to(dtype)
        w, a2 = weight.to(dtype), a.to(dtype)
        b2 = [b.to(dtype) for b in bs]
        y = x2 @ w.t() if bias is None else torch.addmm(bias.to(dtype), x2, w.t())
        if p > 0:
            keep = dropout_mask(x2, p)  # 0 or 1/(1-p), kept for the backward
            xd = x2 * keep
        else:
            keep, xd = None, x2
        h = xd @ a2.t()
        outs, o, r = [], 0, 0
        for size, rank, b, s in zip(sizes, ranks, b2, scales, strict=True):
            outs.append(torch.addmm(y[:, o:o + size], h[:, r:r + rank], b.t(), alpha=s).view(*lead, size))
            o, r = o + size, r + rank
        ctx.save_for_backward(xd, h, w, a2, keep, *b2)
        ctx.meta = (x.dtype, a.dtype, [b.dtype for b in bs], scales, sizes, ranks, lead)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):  # noqa: D102
        xd, h, w, a2, keep, *b2 = ctx.saved_tensors
        x_dtype, a_dtype, b_dtypes, scales, sizes, ranks, lead = ctx.meta
        dys = [g.reshape(-1, size).to(w.dtype) for g, size in zip(grads, sizes, strict=True)]
        dy = dys[0] if len(dys) == 1 else torch.cat(dys, dim=1)
        dx = dy @ w
        dhs, dbs, r = [], [], 0
        for dyi, b, s, rank, bt in zip(dys, b2, scales, ranks, b_dtypes, strict=True):
            hi = h[:, r:r + rank]
            dbs.append(torch.mm(dyi.t(), hi).mul_(s).to(bt))
            dhs.append(torch.mm(dyi, b).mul_(s))
            r += rank
        dh = dhs[0] if len(dhs) == 1 else torch.cat(dhs, dim=1)
        da = (dh.t() @ xd).to(a_dtype)
        dxl = dh @ a2
        if keep is not None:
            dxl.mul_(keep)
        dx.add_(dxl)
        return (dx.to(x_dtype).view(*lead, -1), None, None, da, None, None, None, None, *dbs)


class _Group:
    """One group's shared state: the concatenated base weight and the outputs of the last input."""

    def __init__(self, members: Sequence[torch.nn.Module]):
        self.members = list(members)
        self.names = [_fusable(m) for m in self.members]
        bases = [m.base_layer for m in self.members]
        self.sizes = [b.out_features for b in bases]
        self.ranks = [m.lora_A[n].out_features for m, n in zip(self.members, self.names, strict=True)]
        self.scales = [float(m.scaling[n]) for m, n in zip(self.members, self.names, strict=True)]
        drops = [m.lora_dropout[n] for m, n in zip(self.members, self.names, strict=True)]
        self.p = float(getattr(drops[0], "p", 0.0))
        if len(bases) == 1:
            self.weight = bases[0].weight.data
        else:  # one storage; each member's weight becomes a view of its rows
            self.weight = torch.cat([b.weight.data for b in bases])
            o = 0
            for b, size in zip(bases, self.sizes, strict=True):
                b.weight.data = self.weight[o:o + size]
                o += size
        biases = [b.bias for b in bases]
        if all(v is None for v in biases):
            self.bias = None
        else:
            self.bias = torch.cat([
                v.detach() if v is not None else torch.zeros(s, dtype=self.weight.dtype, device=self.weight.device)
                for v, s in zip(biases, self.sizes, strict=True)
            ])
        self._key: tuple | None = None
        self._ref: torch.Tensor | None = None
        self._outs: list[torch.Tensor | None] = []

    def release(self) -> None:
        """Give each member's weight its own storage again (safetensors refuses shared storage)."""
        if len(self.members) > 1:
            for m in self.members:
                m.base_layer.weight.data = m.base_layer.weight.data.clone()
        self._key, self._ref, self._outs = None, None, []

    def active(self) -> bool:
        return all(not m.merged and not m.disable_adapters for m in self.members) and all(
            list(m.active_adapters) == [n] for m, n in zip(self.members, self.names, strict=True)
        )

    def output(self, index: int, x: torch.Tensor) -> torch.Tensor:
        version = -1 if x.is_inference() else x._version  # inference tensors keep no version counter
        key = (id(x), version, torch.is_grad_enabled())
        if self._key == key and self._ref is x and self._outs[index] is not None:
            out, self._outs[index] = self._outs[index], None
            if all(o is None for o in self._outs):
                self._key, self._ref, self._outs = None, None, []
            return out
        a = torch.cat([m.lora_A[n].weight for m, n in zip(self.members, self.names, strict=True)])
        bs = [m.lora_B[n].weight for m, n in zip(self.members, self.names, strict=True)]
        p = self.p if self.members[0].training else 0.0
        outs = list(_GroupProduct.apply(x, self.weight, self.bias, a, self.scales, p, self.sizes, self.ranks, *bs))
        out = outs[index]
        outs[index] = None
        if len(outs) > 1:
            self._key, self._ref, self._outs = key, x, outs
        return out


def _forward_for(group: _Group, index: int, original):
    def forward(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if args or kwargs or not group.active():
            return original(x, *args, **kwargs)
        return group.output(index, x)

    return forward


@contextlib.contextmanager
def fused_lora(model: torch.nn.Module, enabled: bool = True) -> Iterator[int]:
    """Train ``model``'s LoRA layers through grouped products inside the block.

    Args:
        model: a peft model; its LoRA base weights are frozen.
        enabled: False leaves the model as it is (yields 0).

    Yields:
        The number of groups of two or more layers fused.
    """
    groups = [_Group(g) for g in lora_groups(model)] if enabled else []
    for group in groups:
        for i, member in enumerate(group.members):
            member.forward = _forward_for(group, i, member.forward)
    try:
        yield sum(len(g.members) > 1 for g in groups)
    finally:
        for group in groups:
            for member in group.members:
                del member.forward
            group.release()
