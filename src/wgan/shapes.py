"""Which image sides the convolutional models build: a leaf module (no imports) that both the
models and ``--preset auto`` ask, so the rule is written once."""

from __future__ import annotations


def image_plan(size: int) -> tuple[int, int] | None:
    """``(base, doublings)`` with ``base * 2**doublings == size``, ``base`` in 4..7 and at least
    one doubling; ``None`` for a side the DCGAN and ResNet cannot build (8, 16, 28, 32, 64, ...
    they can; 7, 30, 100 they cannot)."""
    base, doublings = size, 0
    while base > 7 and base % 2 == 0:
        base //= 2
        doublings += 1
    return (base, doublings) if doublings and 4 <= base <= 7 else None
