"""The fast-penalty critic layers (wgan.models.layers): same values and gradients as the stock
PyTorch ops, including the penalty's second-order gradients, with less work in the double
backward."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from wgan import Config
from wgan.models import build_models
from wgan.models.layers import _fast_penalty_forward, avg_pool2x2, leaky_relu
from wgan.objectives import gradient_penalty


class CountFlops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **(kwargs or {}), out_val=out)
        return out


def penalty_gradients(critic, real, fake, epsilon, fast):
    critic.zero_grad(set_to_none=True)
    with CountFlops() as flops:
        penalty = gradient_penalty(critic, real, fake, epsilon=epsilon, fast=fast)
        scores = critic(torch.cat([real, fake]))
        loss = scores[len(real):].mean() - scores[:len(real)].mean() + 10 * penalty
        loss.backward()
    return [p.grad.clone() for p in critic.parameters()], flops.total


CRITICS = {
    "mlp-relu": (dict(model="mlp", width=32, depth=3, activation="relu"), (2,)),
    "mlp-leaky": (dict(model="mlp", width=32, depth=3, activation="leaky_relu"), (2,)),
    "dcgan-28": (dict(model="dcgan", width=8), (1, 28, 28)),
    # Layer norm has true second derivatives: same gradients, but no work to skip.
    "dcgan-32-layer-norm": (dict(model="dcgan", width=8, critic_norm="layer"), (3, 32, 32)),
    "resnet-28": (dict(model="resnet", width=8), (1, 28, 28)),
    "infogan-28": (dict(model="infogan", width=8), (1, 28, 28)),
    "infogan-32-layer-norm": (dict(model="infogan", width=8, critic_norm="layer"), (3, 32, 32)),
}


@pytest.mark.parametrize("name", CRITICS)
def test_penalty_gradients_identical_and_cheaper(name):
    settings, shape = CRITICS[name]
    torch.manual_seed(0)
    _, critic = build_models(Config(loss="wgan-gp", noise_dim=4, **settings).resolve(), shape)
    critic.double()
    real, fake = torch.randn(6, *shape).double(), torch.randn(6, *shape).double()
    epsilon = torch.rand(6).double()
    stock, stock_flops = penalty_gradients(critic, real, fake, epsilon, fast=False)
    fast, fast_flops = penalty_gradients(critic, real, fake, epsilon, fast=True)
    assert len(stock) == len(fast)
    for a, b in zip(stock, fast):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-15)
    assert any(a.abs().max() > 0 for a in stock)
    # The skipped work is the forward pass's backward run on zeros.
    if settings.get("critic_norm", "none") == "none":
        assert fast_flops < 0.9 * stock_flops, (fast_flops, stock_flops)
    else:
        assert fast_flops <= stock_flops


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_leaky_relu_matches_stock_to_second_order(slope):
    x = torch.randn(5, 7, dtype=torch.double, requires_grad=True)
    with _fast_penalty_forward():
        y = leaky_relu(x, slope)
        assert type(y.grad_fn).__name__ == "_LeakyReLUBackward"  # the fast path ran
    torch.testing.assert_close(y, F.leaky_relu(x, slope), rtol=0, atol=0)
    with _fast_penalty_forward():
        torch.autograd.gradcheck(lambda t: leaky_relu(t, slope), (x,))
        torch.autograd.gradgradcheck(lambda t: leaky_relu(t, slope), (x,))


@pytest.mark.parametrize("side", [6, 7])
def test_avg_pool_matches_stock_including_odd_sides(side):
    x = torch.randn(2, 3, side, side, dtype=torch.double, requires_grad=True)
    g = torch.randn(2, 3, side // 2, side // 2, dtype=torch.double)
    (stock,) = torch.autograd.grad(F.avg_pool2d(x, 2), x, g)
    with _fast_penalty_forward():
        y = avg_pool2x2(x)
        torch.autograd.gradgradcheck(avg_pool2x2, (x,))
    (fast,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(y, F.avg_pool2d(x, 2), rtol=0, atol=0)
    torch.testing.assert_close(fast, stock, rtol=0, atol=0)


def test_stock_ops_outside_the_context():
    x = torch.randn(4, requires_grad=True)
    assert type(leaky_relu(x, 0.2).grad_fn).__name__ == "LeakyReluBackward0"
    with _fast_penalty_forward():
        with _fast_penalty_forward(False):
            assert type(leaky_relu(x).grad_fn).__name__ != "_LeakyReLUBackward"
        assert type(leaky_relu(x).grad_fn).__name__ == "_LeakyReLUBackward"
