"""Simultaneous gradient play on f(x, y) = x y (x minimises, y maximises), step r = 0.1.

Each step maps (x, y) to (x - r y, y + r x): a rotation scaled by sqrt(1 + r^2), so the
iterates spiral *outwards* instead of reaching the equilibrium (0, 0), as GAN training can.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .common import plt, save, say


def run(out: Path, quick: bool = False, r: float = 0.1, steps: int = 100) -> dict:
    points = np.empty((steps + 1, 2))
    x, y = 1.0, 1.0
    points[0] = x, y
    for t in range(1, steps + 1):
        x, y = x - r * y, y + r * x  # simultaneous: both use the old values
        points[t] = x, y
    radius = np.linalg.norm(points, axis=1)
    shown = {t: float(radius[t]) for t in (0, 50, 100) if t <= steps}
    for t, value in shown.items():
        expected = math.sqrt(2) * (1 + r * r) ** (t / 2)
        say(f"step {t:>3}: radius {value:.6f} (closed form sqrt(2)(1+r^2)^(t/2) = {expected:.6f})")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(points[:, 0], points[:, 1], "-o", ms=2, lw=0.8)
    ax.plot([0], [0], "k*", ms=10, label="equilibrium")
    ax.set_aspect("equal")
    ax.set_title(f"simultaneous gradient steps on f = xy, r = {r}")
    ax.legend()
    save(fig, out, "xy-game.png")
    return {"radius": shown, "points": points}
