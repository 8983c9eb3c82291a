"""The documentation stays true: every Python block of the README runs, every flag of the CLI is
in docs/cli.md, and README's test command is the one CI runs."""

import argparse
import re
from pathlib import Path

import pytest

from wgan.arguments import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


def _flags(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _flags(sub)
        else:
            yield from (s for s in action.option_strings if s.startswith("--"))


def test_every_flag_is_in_the_cli_reference():
    reference = (ROOT / "docs" / "cli.md").read_text()
    missing = sorted({f for f in _flags(build_parser()) if f not in reference})
    assert not missing, f"run python tools/make_cli_reference.py: {missing}"


def test_readme_test_command_is_what_ci_runs():
    commands = re.findall(r"```bash\n(.*?)```", README, flags=re.S)[0].splitlines()
    test_line = commands[1].split("#")[0].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r'pip install -e "(\.\[[^\]]*\])"', test_line).group(1)
    assert f'-e "{install}"' in ci and "pytest -q" in test_line and "pytest -q" in ci
