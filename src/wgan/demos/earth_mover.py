"""The dirt-pile example: P = (3, 2, 1, 4), Q = (1, 2, 4, 3) on positions 0, 1, 2, 3.

Moving P onto Q from left to right, the dirt carried past each position is
``delta_{i+1} = delta_i + P_i - Q_i``: (0, 2, 2, -1, 0), and the total work is
``W = sum |delta_i| = 5`` (10 shovelfuls in all; W = 0.5 per unit of mass).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from ..divergences import earth_mover_running_cost, wasserstein_discrete
from .common import plt, save, say

P = np.array([3.0, 2.0, 1.0, 4.0])
Q = np.array([1.0, 2.0, 4.0, 3.0])


def run(out: Path, quick: bool = False) -> dict:
    running, work = earth_mover_running_cost(P, Q)
    positions = np.arange(len(P), dtype=float)
    w_pot = wasserstein_discrete(P, Q)
    w_scipy = wasserstein_distance(positions, positions, P, Q) * P.sum()
    say(f"P = {P.astype(int).tolist()}, Q = {Q.astype(int).tolist()} (total mass {P.sum():g})")
    say(f"running cost delta: {running.astype(int).tolist()}")
    say(f"W = sum |delta| = {work:g}")
    say(f"POT ot.emd2:            {w_pot:.6g}")
    say(f"SciPy wasserstein_distance x total mass: {w_scipy:.6g}")

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    axes[0].bar(positions, P, color="tab:blue")
    axes[0].set_title("P")
    axes[1].bar(positions, Q, color="tab:orange")
    axes[1].set_title("Q")
    axes[2].step(np.arange(len(running)), running, where="mid", color="tab:green")
    axes[2].axhline(0, color="0.6", lw=0.8)
    axes[2].set_title(f"dirt carried past each position; W = {work:g}")
    save(fig, out, "emd.png")
    return {"running": running.tolist(), "w": work, "w_pot": w_pot, "w_scipy": w_scipy}
