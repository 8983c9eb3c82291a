import math

import pytest
import torch
from torch import nn

from wgan.objectives import (
    clip_weights,
    gan_discriminator_loss,
    gan_minimax_generator_loss,
    gan_nonsaturating_generator_loss,
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)


class Quadratic(nn.Module):
    """f(x) = 0.5 * sum(a * x^2) per sample, so grad_x f = a * x: known in closed form and
    different for every sample."""

    def __init__(self, shape):
        super().__init__()
        self.a = nn.Parameter(torch.rand(shape) + 0.5)

    def forward(self, x):
        return 0.5 * (self.a * x.pow(2)).flatten(1).sum(1)


def closed_form(critic, real, fake, eps, one_sided=False):
    shape = (-1,) + (1,) * (real.dim() - 1)
    x_hat = eps.view(shape) * real + (1 - eps.view(shape)) * fake
    norms = (critic.a * x_hat).flatten(1).norm(dim=1)
    excess = (norms - 1).clamp(min=0) if one_sided else norms - 1
    return excess.pow(2).mean()


@pytest.mark.parametrize("shape", [(5,), (1, 8, 8), (3, 8, 8)])
def test_gradient_penalty_matches_closed_form_per_sample(shape):
    torch.manual_seed(0)
    critic = Quadratic(shape)
    real, fake = torch.randn(16, *shape), torch.randn(16, *shape)
    eps = torch.rand(16)
    got = gradient_penalty(critic, real, fake, epsilon=eps)
    assert torch.allclose(got, closed_form(critic, real, fake, eps), rtol=1e-5)
    # A norm over the whole batch would give a different value.
    x_hat = eps.view((-1,) + (1,) * len(shape)) * real + (1 - eps.view((-1,) + (1,) * len(shape))) * fake
    batch_wide = ((critic.a * x_hat).norm() - 1) ** 2
    assert not torch.allclose(got, batch_wide, rtol=1e-3)


def test_gradient_penalty_draws_one_epsilon_per_sample():
    torch.manual_seed(1)
    critic = Quadratic((4,))
    real, fake = torch.randn(32, 4), torch.randn(32, 4)
    got = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    eps = torch.rand(32, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(got, closed_form(critic, real, fake, eps), rtol=1e-5)
    shared = closed_form(critic, real, fake, eps[:1].expand(32))
    assert not torch.allclose(got, shared, rtol=1e-3)


def test_one_sided_penalty_ignores_norms_below_one():
    critic = Quadratic((3,))
    with torch.no_grad():
        critic.a.fill_(1.0)
    small = torch.full((8, 3), 0.1)  # gradient norm 0.17 < 1 everywhere on the segment
    assert gradient_penalty(critic, small, -small, one_sided=True).item() == 0.0
    assert gradient_penalty(critic, small, -small).item() > 0.5
    big = torch.full((8, 3), 3.0)
    eps = torch.rand(8)
    assert torch.allclose(gradient_penalty(critic, big, big * 2, epsilon=eps, one_sided=True),
                          closed_form(critic, big, big * 2, eps, one_sided=True))


def test_gradient_penalty_is_differentiable_in_critic_weights():
    critic = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    pen = gradient_penalty(lambda x: critic(x).squeeze(1), torch.randn(8, 3), torch.randn(8, 3))
    pen.backward()
    # every weight shapes grad_x f (the output bias does not, so it gets no gradient)
    for p in (critic[0].weight, critic[0].bias, critic[2].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_gradient_penalty_backward_is_finite_where_the_critic_is_flat():
    """A ReLU critic is flat (gradient exactly 0) on half the samples; the penalty's backward
    through a zero norm must stay finite (a plain sqrt of the squared sum gives NaN there)."""
    critic = nn.Linear(3, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        critic.bias.zero_()
    real = torch.tensor([[2.0, 1.0, 1.0]] * 4 + [[-2.0, 1.0, 1.0]] * 4)
    pen = gradient_penalty(lambda x: torch.relu(critic(x)).squeeze(1), real, real,
                           epsilon=torch.rand(8))
    assert pen.item() == pytest.approx(0.5)  # norms are 1 on half the batch, 0 on the other
    pen.backward()
    assert torch.isfinite(critic.weight.grad).all() and torch.isfinite(critic.bias.grad).all()


def test_clip_weights_bounds_every_parameter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    inside = model[0].weight.detach().clone().clamp(-0.01, 0.01)
    clip_weights(model.parameters(), 0.01)
    for p in model.parameters():
        assert p.abs().max().item() <= 0.01 + 1e-12
    assert torch.equal(model[0].weight, inside)


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(0.5)


def test_gan_losses_match_formulas():
    real, fake = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([-0.5, 0.7, 1.5])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert gan_discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)
    assert gan_minimax_generator_loss(fake).item() == pytest.approx(
        torch.log(1 - d_fake).mean().item(), rel=1e-6)
    assert gan_nonsaturating_generator_loss(fake).item() == pytest.approx(
        -torch.log(d_fake).mean().item(), rel=1e-6)


@pytest.mark.parametrize("logit", [-1e4, -80.0, 80.0, 1e4])
def test_gan_losses_stay_finite_for_extreme_logits(logit):
    x = torch.full((4,), logit, requires_grad=True)
    for loss in (gan_discriminator_loss(x, x), gan_minimax_generator_loss(x),
                 gan_nonsaturating_generator_loss(x)):
        grad, = torch.autograd.grad(loss, x)
        assert math.isfinite(loss.item()) and torch.isfinite(grad).all()
    # the non-saturating loss keeps a gradient where the minimax one vanishes
    fake = torch.full((4,), -30.0, requires_grad=True)
    g_minimax, = torch.autograd.grad(gan_minimax_generator_loss(fake), fake)
    g_ns, = torch.autograd.grad(gan_nonsaturating_generator_loss(fake), fake)
    assert g_minimax.abs().max() < 1e-10 < g_ns.abs().min()
