"""Runnable demonstrations of the WGAN theory (``wgan demo NAME``).

Each demo prints its numbers, writes a PNG figure into the output folder, and returns its numbers
as a dict (the tests assert on them). ``quick=True`` uses smaller budgets.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

#: Each demo's name and the module (in this package) whose ``run(out, quick)`` makes it; a demo
#: is imported only when it runs.
DEMOS: dict[str, str] = {
    "emd": "earth_mover",
    "lines": "parallel_lines",
    "optimal-d": "optimal_discriminator",
    "xy-game": "xy_game",
    "vanishing-gradients": "vanishing_gradients",
    "mode-collapse": "mode_collapse",
    "w-vs-quality": "w_vs_quality",
}


def run_demo(name: str, out: Path, quick: bool = False) -> dict[str, Any]:
    """Run demo ``name``, writing its figure into ``out``; return its numbers."""
    out.mkdir(parents=True, exist_ok=True)
    return importlib.import_module(f".{DEMOS[name]}", __name__).run(out=out, quick=quick)
