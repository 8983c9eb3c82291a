"""An exponential moving average of the generator, used for sampling and evaluation."""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

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
        self._plan: tuple[Any, ...] | None = None  # (source, float groups, integer pairs)

    def _pairs(self, model: nn.Module) -> tuple[list[tuple[list[Tensor], list[Tensor]]],
                                                list[tuple[Tensor, Tensor]]]:
        """The tensors to average, grouped by device and dtype for one foreach call each, and the
        integer buffers to copy; worked out once per source model, not every step."""
        if self._plan is None or self._plan[0] is not model:
            groups: dict[Any, tuple[list[Tensor], list[Tensor]]] = defaultdict(lambda: ([], []))
            integers = []
            for averaged, current in [*zip(self.module.parameters(), model.parameters()),
                                      *zip(self.module.buffers(), model.buffers())]:
                if averaged.is_floating_point():
                    group = groups[averaged.device, averaged.dtype]
                    group[0].append(averaged)
                    group[1].append(current)
                else:
                    integers.append((averaged, current))
            self._plan = (model, list(groups.values()), integers)
        return self._plan[1], self._plan[2]

    def decay_at(self, t: int) -> float:
        """The decay of update ``t`` (from 0): the warm-up ``(1 + t) / (10 + t)``, capped."""
        return min(self.decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        floats, integers = self._pairs(model)
        t = self._count
        for averaged, current in floats:
            if t == 0:
                torch._foreach_copy_(averaged, current)
            else:
                torch._foreach_lerp_(averaged, current, 1.0 - self.decay_at(t))
        for averaged, current in integers:
            averaged.copy_(current)
        self._count += 1
        self.n_averaged.fill_(self._count)

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        self._plan = None  # .to() and the like may replace buffer tensors
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._count = int(self.n_averaged)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
