"""How a training step runs fast, kept apart from what it computes: the device, bf16 autocast,
the channels-last memory layout, ``torch.compile`` with a fallback to eager, and the
process-wide settings (threads, the CPU allocator) that only the command line applies.

The algorithm (:mod:`wgan.algorithm`) calls the generator and the critic through the callables
:meth:`Runtime.forward` returns; nothing here changes the math (up to rounding under bf16).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from .data import Dataset, TensorDataset
from .errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; pass --device "
                          "cpu (a run trained on a GPU continues on the CPU)")
    return torch.device(name)


def configure_process(config: Any) -> list[str]:
    """Apply a config's process-wide settings: PyTorch's CPU threads, and on CPU the glibc
    allocator tuning. Called by the ``wgan`` command; a library user calls it explicitly, since
    it changes the whole process. Returns what it applied."""
    applied = []
    if config.threads:
        torch.set_num_threads(config.threads)
        applied.append(f"threads={config.threads}")
    if config.tune_malloc and resolve_device(config.device).type == "cpu" and tune_cpu_allocator():
        applied.append("tune_malloc")
    return applied


def tune_cpu_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the system.

    A training step frees and reallocates the same large activation buffers every iteration;
    by default glibc serves big blocks with ``mmap`` and unmaps them on free, so every step
    page-faults its activations in again (measured: +4-8% on a DCGAN-32 step, 2 CPU cores).
    Process-wide and only effective with glibc; returns whether it was applied."""
    name = ctypes.util.find_library("c")
    if sys.platform != "linux" or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold,
                                                                       2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False


def cpu_bf16_units() -> bool | None:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo);
    ``None`` where that cannot be read (not Linux). Without them bf16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return None
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_amp(amp: str, device: torch.device) -> tuple[str, str]:
    """``amp`` with ``"auto"`` decided for ``device``, and why: bf16 on a CUDA GPU that supports
    it and on a CPU with bf16 units (:func:`cpu_bf16_units`), where it is faster; float32
    elsewhere, where bf16 would be emulated."""
    if amp != "auto":
        return amp, f"--amp {amp}"
    if device.type == "cuda":
        native, where = torch.cuda.is_bf16_supported(), "this GPU"
    else:
        native, where = device.type == "cpu" and bool(cpu_bf16_units()), "this CPU"
    return ("bf16" if native else "none"), f"auto: {where} has {'' if native else 'no '}bf16 units"


class CompiledOrEager:
    """``torch.compile(module)``, falling back for good to the eager module (with one line to
    ``log``) if compilation fails -- without touching dynamo's process-wide settings."""

    def __init__(self, module: nn.Module, name: str, log: Callable[[str], None]):
        self.module, self.name, self.log = module, name, log
        self.compiled: Callable[..., Any] | None = torch.compile(module)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as err:  # noqa: BLE001  (dynamo and Inductor raise many types)
                self.compiled = None
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                self.log(f"note: torch.compile failed for the {self.name} ({type(err).__name__}"
                         f"{': ' + first[:160] if first else ''}); running it eagerly")
        return self.module(*args)


class Runtime:
    """Device, autocast, memory layout and compilation of one run.

    Args:
        device: where the networks and the in-memory data live.
        amp: ``"bf16"`` for bf16 autocast (CPU or CUDA), else ``"none"``.
        channels_last: use the channels-last layout for image models.
        compile: compile the generator, and the critic unless ``compile_critic`` is False.
        log: where one-line notes go.
    """

    def __init__(self, device: torch.device, amp: str = "none", channels_last: bool = True,
                 compile: bool = False, log: Callable[[str], None] = print):
        self.device = device
        self.amp_dtype = torch.bfloat16 if amp == "bf16" else None
        self.channels_last = channels_last
        self.compile = compile
        self.log = log

    @classmethod
    def from_config(cls, config: Any, log: Callable[[str], None]) -> Runtime:
        device = resolve_device(config.device)
        amp, why = resolve_amp(config.amp, device)
        if config.amp == "auto":
            log(f"precision: {'bf16 autocast' if amp == 'bf16' else 'float32'} ({why})")
        return cls(device, amp, config.channels_last, config.compile, log)

    @property
    def precision(self) -> str:
        """What the networks compute in: ``"bf16"`` under bf16 autocast, else ``"fp32"``."""
        return "fp32" if self.amp_dtype is None else "bf16"

    def autocast(self) -> AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def place(self, data: Dataset, *modules: nn.Module) -> Dataset:
        """Move the networks and the data to the device; with channels-last on image data,
        convert the networks and store in-memory images in that layout once, so that batches
        indexed from them come out in it without a copy per step."""
        self.channels_last = self.channels_last and data.is_image
        for module in modules:
            module.to(self.device)
            if self.channels_last:
                module.to(memory_format=torch.channels_last)
        data = data.to(self.device)
        if self.channels_last and isinstance(data, TensorDataset) and data.data.dim() == 4:
            data.data = data.data.contiguous(memory_format=torch.channels_last)
        return data

    def layout(self, x: Tensor) -> Tensor:
        """A batch in the networks' memory layout (free when it already is)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, module: nn.Module, name: str, compile: bool = True) -> Callable[[Tensor],
                                                                                     Tensor]:
        """The callable the algorithm runs ``module`` through: compiled (if asked and
        ``compile``), under autocast (if asked), with half-precision outputs cast back to
        float32 so that losses are float32."""
        call: Callable[..., Tensor] = module
        if self.compile and compile:
            call = CompiledOrEager(module, name, self.log)
        if self.amp_dtype is None:
            return call

        def autocast_forward(x: Tensor) -> Tensor:
            with self.autocast():
                out = call(x)
            return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out

        return autocast_forward
