"""Training in several processes through PyTorch's own engine: ``torchrun`` starts the processes
(one machine or several), ``torch.distributed`` connects them (gloo on CPU, NCCL on GPUs), and
``DistributedDataParallel`` averages the gradients of the generator and of the critic, wrapped
separately.

What each process does:

* Every rank builds the same networks from the seed; DDP also broadcasts rank 0's weights.
* Every rank draws its own real batch, noise and interpolation weights: its random generator is
  reseeded at every generator step from ``(seed, rank, step)``, so the ranks see different data,
  a run is reproducible, and a resume with any number of processes continues the same way.
  The global batch is ``batch_size x world_size``; learning rates are not scaled.
* The critic step does one backward of the whole critic loss (real, fake and penalty terms),
  after the penalty's input gradient is taken with ``create_graph=True``: DDP then averages the
  full gradient. (Backpropagating the penalty on its own leaves the ranks with different
  gradients and no error.) Weight clipping after the averaged update keeps the ranks identical;
  spectral norm's power-iteration vectors are buffers, broadcast from rank 0 with each forward.
* The generator step runs the critic's bare module (its weights are constants there).
* Batch norm in the generator normalises each rank's own batch; its running statistics are
  broadcast from rank 0 (DDP's default). ``--sync-batch-norm`` (CUDA only) makes it normalise
  over the global batch.
* Only rank 0 writes: metrics, checkpoints, figures, the report. The losses it logs are averaged
  over the ranks.
* Control is collective (:class:`wgan.callbacks.RunControl`): at each step end the ranks share
  whether any of them was asked to stop (SIGINT/SIGTERM) or is due a time-based checkpoint, so a
  signal to one rank stops them all at the same step after rank 0 has written a checkpoint;
  before every checkpoint they agree that all of them hold finite losses and weights.
* A resume loads the checkpoint rank 0 chose on every rank (:func:`shared_checkpoint`), or stops
  every rank with one line naming the rank that cannot read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .errors import CheckpointError, ConfigError, SharedCheckpointError, WganError
from .state import stream_seed

#: Seconds a collective may wait for the other ranks before failing (a dead peer usually fails
#: it at once; this bounds the rest).
TIMEOUT_SECONDS = float(os.environ.get("WGAN_DIST_TIMEOUT", "300"))


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


@dataclass(frozen=True)
class Distributed:
    """This process's place in a multi-process run."""

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` in a DistributedDataParallel wrapper (the module itself is unchanged)."""
        ids = [device.index if device.index is not None else self.local_rank] \
            if device.type == "cuda" else None
        # Buffers (batch-norm statistics, spectral-norm vectors) follow rank 0's at each forward:
        # DDP's default.
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def mean(self, tensor: Tensor) -> Tensor:
        """The mean of ``tensor`` over the ranks (every rank must call it)."""
        total = tensor.clone()
        dist.all_reduce(total)
        return total / self.world_size

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def maximum(self, *values: int) -> tuple[int, ...]:
        """Each value's maximum over the ranks (one small all-reduce): a flag set on any rank is
        set for all."""
        device = torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" \
            else torch.device("cpu")
        votes = torch.tensor([int(v) for v in values], dtype=torch.int64, device=device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return tuple(int(v) for v in votes.tolist())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def first_problem(self, problem: str | None) -> str | None:
        """The first rank's non-``None`` ``problem``, naming the rank, on every rank."""
        for rank, found in enumerate(self.gather(problem)):
            if found is not None:
                return f"{found} (on rank {rank})"
        return None


def world_size_from_env() -> int:
    """The number of processes this one is (about to be) part of: 1 outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1


def shared_checkpoint(dist_: Distributed | None, run: Any, warn: Any
                      ) -> tuple[Any, dict[str, Tensor], dict[str, Any]] | None:
    """The checkpoint to resume from, the same on every rank: ``(path, tensors, meta)``, or
    ``None`` when rank 0 has none.

    Rank 0 picks the newest checkpoint that verifies; every other rank loads the file of that
    name from its own view of the run directory and checks that its checksum is rank 0's. If any
    rank cannot, every rank raises :class:`SharedCheckpointError` naming it (nodes that see
    different files must not train different models)."""
    if dist_ is None:
        return run.latest_checkpoint(warn=warn) if run.checkpoints() else None
    loaded, choice, problem = None, None, None
    if dist_.is_main and run.checkpoints():
        loaded = run.latest_checkpoint(warn=warn)
        choice = (loaded[0].name, run.checkpoint_digest(loaded[0]))
    choice = dist_.broadcast(choice)
    if choice is not None and not dist_.is_main:
        path = run.checkpoint_dir / choice[0]
        try:
            tensors, meta = run.read_checkpoint(path)
            if run.checkpoint_digest(path) != choice[1]:
                problem = f"{path} differs from rank 0's file of that name"
            loaded = (path, tensors, meta)
        except CheckpointError as err:
            problem = str(err)
    problem = dist_.first_problem(problem)
    if problem is not None:
        raise SharedCheckpointError(f"cannot resume: rank 0 resumes from {choice[0]}, but "
                                    f"{problem}; every process must see the same run directory")
    return loaded


def setup(device: str) -> Distributed | None:
    """Join the process group torchrun set up the environment for (or the one already
    initialised); ``None`` when this is a single process. On CUDA each process takes the GPU of
    its local rank."""
    if not dist.is_available() or not (dist.is_initialized() or launched_by_torchrun()):
        return None
    if not dist.is_initialized():
        local_rank = int(os.environ["LOCAL_RANK"])
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if cuda:
            if not torch.cuda.is_available():
                raise ConfigError("device 'cuda' requested but no CUDA GPU is available")
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=timedelta(seconds=TIMEOUT_SECONDS))
    local_rank = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


#: The seed of ``rank``'s random stream at generator step ``step`` (distinct per rank and step,
#: the same in every run).
step_seed = stream_seed


# ---- the command line's side: starting torchrun, stopping every rank together ----------------

def start_torchrun(nproc: int, argv: list[str], log: Callable[[str], None]) -> int:
    """Re-run this ``wgan`` command (``argv``, without ``--nproc``) under ``torchrun --standalone
    --nproc-per-node nproc``; its exit status."""
    import subprocess
    import sys

    if nproc < 1:
        raise WganError(f"--nproc must be >= 1, got {nproc}")
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "wgan", *rest]
    log("starting: torchrun " + " ".join(command[3:]))
    return subprocess.call(command)


def end_run(trainer: Any, err: BaseException, interrupted: bool) -> int:
    """Every rank of a multi-process run stops here together (the ranks agreed on the step): it
    leaves the process group cleanly, rank 0 says why in one line, and an interrupted run exits
    0 on every rank, so torchrun sees a finished job rather than a failed one to tear down. The
    exit status: 0 when ``interrupted`` (a signal), 2 otherwise (training diverged)."""
    import sys

    main = trainer.is_main_process
    trainer.finish_distributed()
    if main:
        print(f"wgan train: {'' if interrupted else 'error: '}{err}", file=sys.stderr, flush=True)
    return 0 if interrupted else 2
