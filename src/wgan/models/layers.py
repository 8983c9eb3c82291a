"""Critic layers that tell autograd which second derivatives are zero, for the gradient penalty.

The gradient penalty differentiates the critic twice: a first-order pass (``create_graph=True``)
gives ``grad_x f(x_hat)``, and minimising the penalty differentiates that pass again. For a critic
built from convolutions, linear layers, ReLU/LeakyReLU and average pooling, the first-order
gradient depends on the forward activations only through the activations' constant slopes. Yet
PyTorch's built-in backward formulas return a *zero tensor* as the derivative of their backward
with respect to the forward input (``zeros_like`` in ``derivatives.yaml`` for the activations; the
same for the input of a convolution's backward), and autograd then runs the forward pass's whole
backward -- every matrix multiply and convolution -- on those zeros: 14% of the FLOPs of a
WGAN-GP training step for the 3x512 MLP and the MNIST DCGAN, 13% for the ResNet
(``benchmarks/RESULTS.md``).

Inside the penalty's forward pass (:func:`wgan.objectives.gradient_penalty` with ``fast=True``,
the only way in) the layers here compute the same values and the same gradients
(they call the same ATen kernels; only the order in which gradient contributions are summed may
differ), but build their backward from the incoming
gradient, the weights and saved *detached* tensors, so autograd knows those derivatives are zero
and skips the work. :class:`Conv2d` goes further: while a graph is being built (the penalty's
first-order pass, which asks for the input's gradient only) it skips the weight gradient. So a
forward inside the penalty is meant for exactly what the penalty does: a first-order gradient
with respect to the input, built with ``create_graph=True``, then one backward through it. The
switch is private and thread-local: anywhere else, and in any other thread, the layers are the
stock ops, so a user's own double backward through a critic gets every gradient.
``--no-fast-penalty`` turns it off; generators keep the stock layers. Under autocast the
convolution casts its input and weights to the autocast dtype itself, as the stock op would.
``tests/test_layers.py`` checks values, gradients and the penalty's weight gradients against the
stock ops for every critic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _LeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, slope: float) -> Tensor:
        y = F.relu(x) if slope == 0.0 else F.leaky_relu(x, slope)
        # Saved detached: the backward below is then differentiable in ``grad`` only, and the
        # sign of ``y`` (the sign of ``x``) is a constant of the backward graph.
        ctx.save_for_backward(y.detach())
        ctx.slope = slope
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y,) = ctx.saved_tensors
        if ctx.slope == 0.0:
            return torch.ops.aten.threshold_backward(grad, y, 0), None
        return torch.ops.aten.leaky_relu_backward(grad, y, ctx.slope, True), None


class _AvgPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.odd = (x.shape[-2] % 2, x.shape[-1] % 2)
        return F.avg_pool2d(x, 2)

    @staticmethod
    def backward(ctx, grad: Tensor):
        # Each input pixel of a 2x2 window receives a quarter of its output's gradient; an odd
        # last row or column (dropped by the pooling) receives zero.
        spread = F.interpolate(grad, scale_factor=2, mode="nearest") * 0.25
        if any(ctx.odd):
            spread = F.pad(spread, (0, ctx.odd[1], 0, ctx.odd[0]))
        return spread


class _Conv2d(torch.autograd.Function):
    """``F.conv2d`` whose backward, while a graph is being built (the penalty's first-order pass,
    ``create_graph=True``), returns the input gradient only, computed from the incoming gradient
    and the weight -- not from the saved input, so its own derivative needs no zero tensor for
    it. Without a graph (the final backward) it returns every gradient, as the stock op does."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride, padding, dilation,
                groups) -> Tensor:
        ctx.save_for_backward(x.detach(), weight)
        ctx.has_bias = bias is not None
        ctx.conv = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        first_order_only = torch.is_grad_enabled()
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1] and not first_order_only,
                ctx.has_bias and ctx.needs_input_grad[2] and not first_order_only]
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, stride, padding,
            dilation, False, [0, 0], groups, mask)
        return grad_x, grad_w, grad_b, None, None, None, None


_state = threading.local()  # .active: inside the penalty's forward, in this thread only


def _active() -> bool:
    return getattr(_state, "active", False)


@contextmanager
def _fast_penalty_forward(enabled: bool = True) -> Iterator[None]:
    """Within this context, in this thread, the layers of this module use the backward described
    in the module docstring. Private: entered only by ``gradient_penalty(fast=True)``."""
    before, _state.active = _active(), enabled
    try:
        yield
    finally:
        _state.active = before


def leaky_relu(x: Tensor, slope: float = 0.0, inplace: bool = False) -> Tensor:
    """``F.leaky_relu(x, slope)`` (``F.relu`` for ``slope=0``); see the module docstring.
    ``inplace`` applies to the stock path only."""
    if _active():
        return _LeakyReLU.apply(x, slope)
    return F.relu(x, inplace) if slope == 0.0 else F.leaky_relu(x, slope, inplace)


def avg_pool2x2(x: Tensor) -> Tensor:
    """``F.avg_pool2d(x, 2)``; see the module docstring."""
    return _AvgPool2x2.apply(x) if _active() else F.avg_pool2d(x, 2)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding only) for critics; see the module docstring."""

    def forward(self, x: Tensor) -> Tensor:
        if not (_active() and self.padding_mode == "zeros" and isinstance(self.padding, tuple)):
            return super().forward(x)
        weight, bias = self.weight, self.bias
        device = x.device.type
        if torch.is_autocast_enabled(device):
            # What autocast does for the stock convolution: compute in its dtype. Cast outside
            # the Function, so that the backward gets one dtype and the casts' own backward
            # returns float32 gradients to the float32 weights.
            dtype = torch.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
            with torch.autocast(device, enabled=False):
                return _Conv2d.apply(x, weight, bias, self.stride, self.padding, self.dilation,
                                     self.groups)
        return _Conv2d.apply(x, weight, bias, self.stride, self.padding, self.dilation,
                             self.groups)


class FullPrecision:
    """Mixin for a layer that computes in float32 even under autocast: its input is cast up and
    autocast is off inside it. For the layers whose rounding matters: a generator's output layer
    (bf16 keeps 8 bits of mantissa, so its outputs would be rounded by up to 0.4% of their size:
    for standardised 2-D data a third of a grid25 mode's standard deviation, which lost a mode
    on one seed in three in session 4's measurement) and a critic's first layer
    (the one the gradient penalty differentiates with respect to the samples). Outside
    autocast it is the plain layer; the parameters and their names do not change."""

    def forward(self, x: Tensor) -> Tensor:
        device = x.device.type
        if not torch.is_autocast_enabled(device):
            return super().forward(x)  # type: ignore[misc]
        with torch.autocast(device, enabled=False):
            return super().forward(x.float())  # type: ignore[misc]


class FullPrecisionLinear(FullPrecision, nn.Linear):
    """``nn.Linear`` computed in float32 under autocast (:class:`FullPrecision`)."""


class FullPrecisionConvTranspose2d(FullPrecision, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` computed in float32 under autocast (:class:`FullPrecision`)."""


class FullPrecisionGeneratorConv2d(FullPrecision, nn.Conv2d):
    """``nn.Conv2d`` (stock, for generators) computed in float32 under autocast."""


class FullPrecisionConv2d(FullPrecision, Conv2d):
    """The critics' :class:`Conv2d` computed in float32 under autocast."""


class LeakyReLU(nn.Module):
    """``nn.LeakyReLU`` (``nn.ReLU`` for ``slope=0``) for critics; see the module docstring."""

    def __init__(self, slope: float = 0.0, inplace: bool = False):
        super().__init__()
        self.slope, self.inplace = float(slope), inplace

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.slope, self.inplace)

    def extra_repr(self) -> str:
        return f"slope={self.slope}" + (", inplace=True" if self.inplace else "")
