"""Runnable demonstrations of the WGAN theory (``wgan demo NAME``).

Each demo prints its numbers, writes a PNG figure into the output folder, and returns its numbers
as a dict (the tests assert on them). ``quick=True`` uses smaller budgets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    earth_mover,
    mode_collapse,
    optimal_discriminator,
    parallel_lines,
    vanishing_gradients,
    w_vs_quality,
    xy_game,
)

DEMOS: dict[str, Callable[..., dict[str, Any]]] = {
    "emd": earth_mover.run,
    "lines": parallel_lines.run,
    "optimal-d": optimal_discriminator.run,
    "xy-game": xy_game.run,
    "vanishing-gradients": vanishing_gradients.run,
    "mode-collapse": mode_collapse.run,
    "w-vs-quality": w_vs_quality.run,
}


def run_demo(name: str, out: Path, quick: bool = False) -> dict[str, Any]:
    """Run demo ``name``, writing its figure into ``out``; return its numbers."""
    out.mkdir(parents=True, exist_ok=True)
    return DEMOS[name](out=out, quick=quick)
