"""An exponential moving average of the generator, used for sampling and evaluation."""

from __future__ import annotations

import copy
from collections import defaultdict

import torch
from torch import Tensor, nn


class ExponentialMovingAverage(nn.Module):
    """``theta_avg <- d * theta_avg + (1 - d) * theta`` after every generator step, with the decay
    warmed up as ``d = min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so the random initial
    weights do not linger in the average. The first update copies.

    Floating-point parameters *and buffers* are averaged (batch norm's running mean and variance
    follow the averaged weights); integer buffers (batch norm's ``num_batches_tracked``) are
    copied. The state dict has the keys ``module.*`` and ``n_averaged``.
    """

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.register_buffer("n_averaged", torch.zeros((), dtype=torch.long))
        self._count = 0  # n_averaged on the host: reading the buffer would wait for the device

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        pairs = [*zip(self.module.parameters(), model.parameters()),
                 *zip(self.module.buffers(), model.buffers())]
        groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], list[Tensor]]] = \
            defaultdict(lambda: ([], []))
        for averaged, current in pairs:
            if self._count == 0 or not averaged.is_floating_point():
                averaged.copy_(current)
            else:
                pair = groups[averaged.device, averaged.dtype]
                pair[0].append(averaged)
                pair[1].append(current)
        if self._count > 0:
            t = self._count
            weight = 1.0 - min(self.decay, (1.0 + t) / (10.0 + t))
            for averaged, current in groups.values():
                torch._foreach_lerp_(averaged, current, weight)
        self._count += 1
        self.n_averaged.fill_(self._count)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._count = int(self.n_averaged)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
