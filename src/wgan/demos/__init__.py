"""Runnable demonstrations of the WGAN theory; each prints its numbers and writes a figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMOS: dict[str, Callable[..., dict[str, Any]]] = {}


def run_demo(name: str, out: Path, quick: bool = False) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    return DEMOS[name](out=out, quick=quick)
