"""The generator's moving average: its update rule, warm-up included, by hand."""

import torch
from torch import nn

from wgan.ema import ExponentialMovingAverage


def _track(decay: float, values: list[float]) -> float:
    model = nn.Linear(1, 1, bias=False)
    ema = ExponentialMovingAverage(model, decay)
    for value in values:
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
    return float(ema.module.weight)


def test_update_follows_the_warmed_up_decay():
    # The bug caught: a different warm-up (or none), or the weights of old and new swapped.
    values = [float(v) for v in torch.linspace(-1.0, 3.0, 40)]
    expected = values[0]  # the first update copies
    for t, value in enumerate(values[1:], start=1):
        d = min(0.7, (1 + t) / (10 + t))  # the decay binds from t = 20
        expected = d * expected + (1 - d) * value
    assert abs(_track(0.7, values) - expected) < 1e-6
    # early on, the warm-up is below both decays: the same average (what RESULTS, session 14,
    # and the --ema help say about short runs)
    assert _track(0.999, values) == _track(0.9999, values)
    assert _track(0.5, values) != _track(0.999, values)
