"""The shape of the code (issue 12), checked so that it stays that way: no import circle inside
the package, no class over ~250 lines, Algorithm 1 on one screen, the resume whitelist derived
from the config's field roles, one registry of constraints, and the public extension points
(callbacks, your own networks) working."""

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

import wgan
from wgan import Callback, Config, StopTraining, Trainer
from wgan.algorithm import Algorithm
from wgan.config import field_roles, resumable_fields
from wgan.constraints import CONSTRAINTS
from wgan.errors import ConfigError

PACKAGE = Path(wgan.__file__).parent
TINY = dict(width=16, depth=2, batch_size=32, noise_dim=4)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, anywhere in the file: function-level
    imports and those under ``if TYPE_CHECKING`` too (a type-only import is still a
    dependency a reader has to follow)."""
    tree = ast.parse(path.read_text())
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("wgan"):
                found.add(target)
                for alias in node.names:  # "from . import loop" names a module
                    found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("wgan"))
    return found


def test_no_import_circle_in_the_package():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {t for t in imports(path) if t in files and t != name}
             for name, path in files.items()}
    # a package's __init__ re-exporting its own submodules is not a circle of the design
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and t in files)}

    def cycle_from(start):
        stack, on_path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.pop()
            elif child in on_path:
                return on_path[on_path.index(child):] + [child]
            else:
                stack.append((child, iter(sorted(graph[child]))))
                on_path.append(child)
        return None

    for name in graph:
        assert cycle_from(name) is None, " -> ".join(cycle_from(name))
    # and the check can see one: plots importing the Trainer was the circle issue 12 named
    graph["wgan.plots"].add("wgan.train")
    assert cycle_from("wgan.train") is not None


def test_no_class_over_250_lines_and_the_algorithm_on_one_screen():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 250, (path.name, node.name, length)
    for method in (Algorithm.step, Algorithm.critic_iteration, Algorithm.generator_iteration):
        assert len(inspect.getsource(method).splitlines()) <= 20, method.__name__
    # the algorithm never asks which loss or constraint it runs
    source = inspect.getsource(Algorithm)
    for word in ('"wgan', '"gp"', '"clip"', "isinstance", "config."):
        assert word not in source, word


def test_what_a_resume_may_change_follows_from_the_field_roles(tmp_path):
    roles = field_roles()
    assert set(roles.values()) <= {"data", "model", "algorithm", "length", "runtime", "logging"}
    allowed = set(resumable_fields())
    assert {"steps", "device", "threads", "log_every", "checkpoint_minutes", "amp"} <= allowed
    assert not {"lr", "loss", "constraint", "width", "data", "seed", "batch_size"} & allowed
    config = Config(data="ring8", steps=4, **TINY).resolve()
    Trainer(config, out=tmp_path / "r", log=lambda m: None).fit(progress=False)
    with pytest.raises(ConfigError, match="cannot change constraint, lr when resuming"):
        Trainer.resume(tmp_path / "r", lr=1.0, constraint="spectral")


def test_config_is_resolved_once_into_a_frozen_value():
    config = Config(data="ring8", loss="wgan")
    resolved = config.resolve()
    assert isinstance(resolved, wgan.ResolvedConfig) and resolved.resolve() is resolved
    assert resolved.constraint == "clip" and config.constraint is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.lr = 1.0
    changed = resolved.replace(steps=7)
    assert isinstance(changed, wgan.ResolvedConfig) and changed.steps == 7
    with pytest.raises(ConfigError, match="steps must be > 0"):
        resolved.replace(steps=0)


def test_one_registry_of_constraints_and_losses():
    from wgan.config import Config as C
    from wgan.objectives import LOSSES

    assert set(CONSTRAINTS) == {"none", "clip", "gp", "lp", "spectral"}
    assert {o.constraint for o in LOSSES.values()} <= set(CONSTRAINTS)
    with pytest.raises(ConfigError, match="unknown constraint 'box'"):
        C(constraint="box").resolve()
    # a constraint other than the loss's own brings its own optimizer defaults
    sn = C(data="x.npy", loss="wgan", constraint="spectral").resolve()
    assert (sn.optimizer, sn.lr, sn.critic_boost) == ("adam", 2e-4, False)
    clipped_gan = C(data="x.npy", loss="gan", constraint="clip").resolve()
    assert (clipped_gan.optimizer, clipped_gan.lr) == ("adam", 2e-4)  # the GAN's own


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.events, self.stop_at = [], stop_at

    def on_fit_start(self, trainer, total):
        self.events.append(("start", trainer.step, total))

    def on_step_end(self, trainer, losses):
        self.events.append(("step", trainer.step, sorted(losses)))
        if trainer.step == self.stop_at:
            raise StopTraining

    def on_log(self, trainer, row):
        self.events.append(("log", row["step"]))

    def on_fit_end(self, trainer, error):
        self.events.append(("end", trainer.step, error))


def test_fit_calls_callbacks_in_order_and_stops_cleanly():
    trainer = Trainer(Config(data="ring8", steps=10, log_every=3, **TINY), log=lambda m: None)
    recorder = Recorder(stop_at=7)
    trainer.fit(callbacks=[recorder], progress=False)
    events = recorder.events
    assert events[0] == ("start", 0, 10) and events[-1] == ("end", 7, None)
    assert [e[1] for e in events if e[0] == "step"] == list(range(1, 8))
    assert [e[1] for e in events if e[0] == "log"] == [3, 6]
    assert events[1] == ("step", 1, ["critic_loss", "generator_loss", "penalty"])
    assert trainer.step == 7


class TinyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, z):
        return self.net(z)


def test_your_own_generator_and_critic_modules():
    critic = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0))
    generator = TinyGenerator()
    config = Config(data="ring8", steps=30, noise_dim=3, batch_size=32)
    trainer = Trainer(config, generator=generator, critic=critic, log=lambda m: None)
    before = [p.clone() for p in critic.parameters()]
    trainer.fit(progress=False)
    assert trainer.generator is generator and trainer.critic is critic
    assert any(not torch.equal(p, q) for p, q in zip(critic.parameters(), before))
    assert trainer.sample(10).shape == (10, 2)


def test_the_command_line_starts_without_the_heavy_libraries():
    """`wgan --help` and the CLI's input checks must not wait for POT (and the scikit-learn it
    imports), matplotlib or the demos: the package's names load on first use. Also every
    public name still resolves, and an unknown one is an AttributeError."""
    import subprocess
    import sys

    code = ("import sys, wgan, wgan.cli; wgan.cli.build_parser(); "
            "print(sorted(m for m in ('ot', 'sklearn', 'matplotlib', 'wgan.train', "
            "'wgan.demos.earth_mover') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    # Resolve every public name in a fresh interpreter too: in this process earlier tests may
    # already have imported the module a wrong entry of `wgan._PUBLIC` points at.
    code = ("import wgan; missing = [n for n in wgan.__all__ if getattr(wgan, n, None) is None]; "
            "print(len(wgan.__all__), missing)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"{len(wgan.__all__)} []"
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        wgan.Trainr  # noqa: B018
