"""Run under torchrun by test_distributed.py: `wgan train ARGS` through the real CLI, with faults
that only one rank sees, set by environment variables:

* ``WGAN_TEST_NAN_STEP=K``: rank 1 reports a NaN critic loss at step K (its weights stay finite,
  as when one rank's batch holds a bad value the others do not see);
* ``WGAN_TEST_RESUME=A,B``: rank r resumes from the r-th directory (nodes that see different
  files); ARGS are the rest of the command;
* ``WGAN_TEST_DUMP=DIR``: each rank saves its weights at the end as ``DIR/rankR.npy``.

    torchrun --standalone --nproc-per-node 2 tests/distributed_control_worker.py train ...
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch

from wgan import cli, train

RANK = int(os.environ["RANK"])


def poison_losses(step_to_poison: int) -> None:
    original = train.Trainer.train_step

    def train_step(self):
        losses = original(self)
        if self.step == step_to_poison:
            losses = {**losses, "critic_loss": torch.tensor(float("nan"))}
        return losses

    train.Trainer.train_step = train_step


def dump_weights(folder: Path) -> None:
    original = train.Trainer.finish_distributed

    def finish_distributed(self):
        weights = torch.cat([p.detach().flatten() for m in (self.generator, self.critic)
                             for p in m.parameters()])
        np.save(folder / f"rank{RANK}.npy", weights.numpy())
        np.save(folder / f"step-rank{RANK}.npy", np.array(self.step))
        original(self)

    train.Trainer.finish_distributed = finish_distributed


def main() -> int:
    args = sys.argv[1:]
    if os.environ.get("WGAN_TEST_NAN_STEP") and RANK == 1:
        poison_losses(int(os.environ["WGAN_TEST_NAN_STEP"]))
    if os.environ.get("WGAN_TEST_DUMP"):
        dump_weights(Path(os.environ["WGAN_TEST_DUMP"]))
    if os.environ.get("WGAN_TEST_RESUME"):
        args = ["train", "--resume", os.environ["WGAN_TEST_RESUME"].split(",")[RANK], *args]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
