"""The optimal discriminator (Goodfellow et al. 2014, Proposition 1 and Theorem 1).

For fixed densities p_r and p_g the discriminator maximising
``V(D) = E_r[log D(x)] + E_g[log(1 - D(x))]`` is ``D* = p_r / (p_r + p_g)``, and
``V(D*) = 2 JS(p_r || p_g) - 2 log 2``. Here p_r = N(0, 1) and p_g = N(2, 0.5^2): a small
network trained on samples approaches D*, and its value approaches 2 JS - 2 log 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy.stats import norm
from torch import nn

from ..objectives import gan_discriminator_loss
from .common import plt, save, say

REAL = (0.0, 1.0)
FAKE = (2.0, 0.5)
GRID = np.linspace(-4.0, 4.0, 4001)


def densities(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return norm.pdf(x, *REAL), norm.pdf(x, *FAKE)


def js_numeric() -> float:
    """JS(p_r || p_g) by quadrature on a fine grid (natural log)."""
    x = np.linspace(-12, 12, 200_001)
    p, q = densities(x)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        integrand = 0.5 * np.where(p > 0, p * np.log(p / m), 0) + 0.5 * np.where(
            q > 0, q * np.log(q / m), 0)
    return float(np.trapezoid(integrand, x))


def value_function(d: np.ndarray, x: np.ndarray) -> float:
    """V(D) by quadrature: int p_r log D + p_g log(1 - D)."""
    p, q = densities(x)
    d = np.clip(d, 1e-300, 1 - 1e-16)
    return float(np.trapezoid(p * np.log(d) + q * np.log1p(-d), x))


def run(out: Path, quick: bool = False, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    disc = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 1))
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3)
    steps = 800 if quick else 4000
    for step in range(steps):
        real = REAL[0] + REAL[1] * torch.randn(512, 1, generator=rng)
        fake = FAKE[0] + FAKE[1] * torch.randn(512, 1, generator=rng)
        loss = gan_discriminator_loss(disc(real).squeeze(1), disc(fake).squeeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == steps // 2:
            for group in opt.param_groups:
                group["lr"] *= 0.2
    x = np.linspace(-12, 12, 200_001)
    with torch.no_grad():
        d_trained = torch.sigmoid(disc(torch.tensor(x, dtype=torch.float32)[:, None])).squeeze(1)
    d_trained = d_trained.double().numpy()
    p, q = densities(x)
    d_star = p / (p + q)
    window = (x >= GRID[0]) & (x <= GRID[-1])
    # Where neither density has mass, D* is not learnable from samples: weight by the mixture.
    mixture = 0.5 * (p + q)
    mean_error = float(np.trapezoid(np.abs(d_trained - d_star) * mixture, x))
    central = (x >= -1.0) & (x <= 3.0)
    max_error = float(np.max(np.abs(d_trained - d_star)[central]))
    js = js_numeric()
    v_star = value_function(d_star, x)
    v_trained = value_function(d_trained, x)
    target = 2 * js - 2 * math.log(2)
    say(f"p_r = N{REAL}, p_g = N{FAKE}; trained {steps} steps")
    say(f"E_(p_r+p_g)/2 |D_trained - D*| = {mean_error:.4f}; max on [-1, 3]: {max_error:.4f}")
    say(f"V(D*)       = {v_star:.6f}")
    say(f"2 JS - 2 log 2 = {target:.6f}   (JS = {js:.6f})")
    say(f"V(D_trained) = {v_trained:.6f}  (never above V(D*))")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x[window], p[window], label="p_r", color="tab:blue")
    ax.plot(x[window], q[window], label="p_g", color="tab:orange")
    ax.plot(x[window], d_star[window], "k--", label="D* = p_r / (p_r + p_g)")
    ax.plot(x[window], d_trained[window], color="tab:green", alpha=0.8, label="trained D")
    ax.set_title("the optimal discriminator")
    ax.legend()
    save(fig, out, "optimal-d.png")
    return {"mean_error": mean_error, "max_error": max_error, "v_star": v_star, "v_trained": v_trained,
            "two_js_minus_two_log2": target, "js": js}
