"""Run under torchrun by test_distributed.py: one critic step and one generator step of a tiny
MLP WGAN in float64 with DistributedDataParallel, for each Lipschitz constraint; every rank saves
its weights and the inputs it drew, for the test to compare with one process on the global batch.

    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py OUT [--separate-backward]
    torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py OUT --conv

``--separate-backward`` is the known trap: backpropagating the penalty on its own (a second
backward per critic step). The test checks that it is caught.

``--conv``: a DCGAN critic with layer norm and the fast penalty, trained on the real data path
(sklearn's digits, each rank drawing its own batches from its own stream); every rank saves the
real batches, noise and interpolation weights it drew besides its weights.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from wgan import Config, Trainer
from wgan.algorithm import Algorithm
from wgan.data import TensorDataset

CONSTRAINTS = ("clip", "gp", "lp", "spectral")
BATCH, NOISE = 8, 3


def points() -> torch.Tensor:
    return torch.randn(256, 2, generator=torch.Generator().manual_seed(0))


def config(constraint: str) -> Config:
    return Config(data="points", loss="wgan", constraint=constraint, preset="none", width=16,
                  depth=2, noise_dim=NOISE, batch_size=BATCH, n_critic=1, critic_boost=False,
                  steps=1, seed=5, lr=1e-3, clip=0.05)


def real_batch(rank: int) -> torch.Tensor:
    return points()[rank * BATCH:(rank + 1) * BATCH]


def noise_batch(rank: int, call: int) -> torch.Tensor:
    return torch.randn(BATCH, NOISE, generator=torch.Generator().manual_seed(1000 * rank + call))


def separate_backward(self: Algorithm, penalize: bool = True):
    """The trap: the penalty backpropagated on its own, after the loss's own backward."""
    real = self.real_batch(self.batch_size)
    with torch.no_grad():
        fake = self.generate(self.noise(self.batch_size))
    real_scores, fake_scores = self.scores(real, fake)
    critic_loss = self.objective.critic_loss(real_scores, fake_scores)
    penalty = self.constraint.penalty(self.criticize, real, fake, self.rng)
    self.critic_optimizer.zero_grad(set_to_none=True)
    critic_loss.backward()
    if penalty is not None:
        (self.constraint.weight * penalty).backward()
    self.critic_optimizer.step()
    self.constraint.after_critic_step(self.critic)
    return critic_loss.detach(), self._zero


def conv_config() -> Config:
    return Config(data="digits", model="dcgan", loss="wgan-gp", preset="none", width=4,
                  noise_dim=NOISE, batch_size=BATCH, n_critic=2, critic_boost=False, steps=1,
                  seed=7, lr=1e-3, batch_norm=False, critic_norm="layer", fast_penalty=True)


def record_inputs(trainer: Trainer) -> dict[str, list[torch.Tensor]]:
    """Let the trainer draw as usual, and keep what it drew."""
    drawn: dict[str, list[torch.Tensor]] = {"real": [], "noise": [], "epsilon": []}
    algorithm, penalty = trainer.algorithm, trainer.constraint.penalty

    def keep(name, function):
        def wrapper(n):
            value = function(n)
            drawn[name].append(value.detach().clone())
            return value
        return wrapper

    def penalty_keeping_epsilon(critic, real, fake, generator):
        state = generator.get_state()  # the penalty's first draw is epsilon, one per sample
        drawn["epsilon"].append(torch.rand(real.shape[0], dtype=real.dtype,
                                           generator=torch.Generator().set_state(state)))
        return penalty(critic, real, fake, generator)

    algorithm.real_batch = keep("real", algorithm.real_batch)
    algorithm.noise = keep("noise", algorithm.noise)
    algorithm.constraint.penalty = penalty_keeping_epsilon
    return drawn


def conv_main(out: Path) -> None:
    trainer = Trainer(conv_config(), log=lambda m: None)
    drawn = record_inputs(trainer)
    trainer.train_step()
    weights = torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                         for p in m.parameters()])
    np.save(out / f"conv-rank{trainer.rank}.npy", weights.numpy())
    torch.save(drawn, out / f"conv-drawn-rank{trainer.rank}.pt")
    trainer.finish_distributed()


def main() -> None:
    torch.set_default_dtype(torch.float64)
    out = Path(sys.argv[1])
    if "--conv" in sys.argv:
        conv_main(out)
        return
    separate = "--separate-backward" in sys.argv
    for constraint in CONSTRAINTS:
        trainer = Trainer(config(constraint), dataset=TensorDataset("points", points()),
                          log=lambda m: None)
        rank = trainer.rank
        calls = iter(range(100))
        trainer.algorithm.real_batch = lambda n, rank=rank: real_batch(rank)
        trainer.algorithm.noise = lambda n, rank=rank: noise_batch(rank, next(calls))
        if separate:
            trainer.algorithm.critic_iteration = separate_backward.__get__(trainer.algorithm)
        trainer.train_step()
        weights = torch.cat([p.detach().flatten() for m in (trainer.generator, trainer.critic)
                             for p in m.parameters()])
        np.save(out / f"{constraint}-rank{rank}.npy", weights.numpy())
        if constraint == CONSTRAINTS[-1]:
            trainer.finish_distributed()


if __name__ == "__main__":
    main()
