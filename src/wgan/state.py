"""What a checkpoint holds, and how it is restored on any device.

A checkpoint is flat tensors (safetensors) plus JSON metadata: the networks' state dicts
(``generator.*``, ``critic.*``, ``ema.*``), the optimizers' state (``opt_critic.*``,
``opt_generator.*``; hyper-parameters in the metadata), the data's standardisation, and the
training random generator's state with the device type it came from.

Tensors are stored on the CPU and loaded onto whatever device the reader uses. A random
generator's state is device-specific (a CPU generator holds a 5,056-byte Mersenne Twister
state, a CUDA one 16 bytes of seed and offset): it is restored on the same device type, and on
another one the generator is reseeded from ``(seed, step)`` -- deterministically, with one line
saying so. Sampling and evaluation never read it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import CheckpointError

_CPU_STATE_BYTES = 5056  # torch.Generator("cpu").get_state().numel()


def module_tensors(prefix: str, module: nn.Module) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer
                      ) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    """An optimizer's per-parameter state as flat tensors, and its JSON-able param groups."""
    state = optimizer.state_dict()
    tensors = {f"{prefix}.{index}.{key}": torch.as_tensor(value)
               for index, values in state["state"].items() for key, value in values.items()}
    return tensors, state["param_groups"]


def strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    start = prefix + "."
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}


def load_module(module: nn.Module, tensors: dict[str, Tensor], prefix: str) -> None:
    try:
        module.load_state_dict(strip(tensors, prefix))
    except (RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint does not match this model/config ({prefix}: "
                              f"{str(err).splitlines()[0]})") from None


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], prefix: str,
                   param_groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in strip(tensors, prefix).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:  # tensors are moved to the parameters' device by the optimizer itself
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    except (RuntimeError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint does not match this model/config ({prefix}: "
                              f"{str(err).splitlines()[0]})") from None
    # Checkpoints store contiguous tensors; give per-parameter buffers their parameter's memory
    # layout again (channels-last), as a fresh optimizer has them: fused kernels may take another
    # path on mismatched layouts, and a resume must continue bit for bit.
    for param, values in optimizer.state.items():
        for key, value in values.items():
            if isinstance(value, Tensor) and value.shape == param.shape and \
                    value.stride() != param.stride():
                values[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def rng_device_type(state: Tensor, recorded: str | None) -> str:
    """The device type a generator state came from: as recorded, or (checkpoints written before
    it was recorded) from its size."""
    if recorded:
        return recorded
    return "cpu" if state.numel() == _CPU_STATE_BYTES else "cuda"


def restore_rng(generator: torch.Generator, state: Tensor, saved_device_type: str, seed: int,
                step: int) -> str | None:
    """Restore ``generator`` to ``state`` when it came from the same device type; otherwise
    reseed it from ``(seed, step)`` and return the one line that says so."""
    here = generator.device.type
    if saved_device_type == here:
        try:
            generator.set_state(state.to(torch.uint8).cpu())
            return None
        except RuntimeError:
            pass  # a state of the right device type but the wrong size: reseed as below
    generator.manual_seed(stream_seed(seed, 0, step))
    return (f"note: the checkpoint's random state is from a {saved_device_type} generator and "
            f"this run continues on {here}; reseeded its random stream from (seed {seed}, step "
            f"{step}), so the continuation is reproducible but not the one {saved_device_type} "
            f"would have drawn")


def stream_seed(seed: int, rank: int, step: int) -> int:
    """The seed of a training random stream restarted at generator step ``step`` by process
    ``rank``: distinct per rank and step, the same in every run. Used by every process of a
    distributed run at every step, and to continue a run on another device type."""
    return (seed * 0x9E3779B97F4A7C15 + rank * 0xBF58476D1CE4E5B9 + step * 0x94D049BB133111EB
            + 1) % (2**63 - 1)
