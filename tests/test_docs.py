"""The README and docs/*.md cannot drift from the code: every ``python`` block runs, every ``fwm-rl`` command parses.

A python block runs as written, in a fresh namespace and an empty folder, except that a line ending in
``# doc-test: VALUE`` has its right-hand side replaced by VALUE (how a block says which size to use in a
test, e.g. ``EPISODES = 1000  # doc-test: 1``). Every ``fwm-rl ...`` line of a bash block is parsed by the real
command line (``fwm_rl.cli.build_parser``: the command, its options and their values must exist), and every
``python scripts/NAME.py`` line names a script that exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fwm_rl.cli import build_parser

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SIZE = re.compile(r"^(\s*[\w.]+\s*=\s*).*#\s*doc-test:\s*(.+)$")


def blocks(language: str) -> list[tuple[str, str]]:
    """``(where, code)`` of every fenced block of ``language`` in the docs."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                line = text[: match.start()].count("\n") + 1
                found.append((f"{path.relative_to(ROOT)}:{line}", match.group(2)))
    return found


def test_the_docs_have_blocks_to_check():
    assert len(blocks("python")) >= 6 and len(blocks("bash")) >= 8


def sized(code: str) -> str:
    """``code`` with the sizes its ``# doc-test:`` comments ask for."""
    return "\n".join(SIZE.sub(lambda m: m.group(1) + m.group(2).strip(), line) for line in code.split("\n"))


@pytest.mark.parametrize("where, code", blocks("python"), ids=[where for where, _ in blocks("python")])
def test_python_blocks_run(where, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(sized(code), where, "exec"), {"__name__": "__doc_test__"})


def commands(prefix: str) -> list[tuple[str, list[str]]]:
    """``(where, argv)`` of every line of a bash block that runs ``prefix`` (comments and pipes cut off)."""
    found = []
    for where, code in blocks("bash"):
        for line in code.replace("\\\n", " ").split("\n"):  # continuation lines joined
            line = re.split(r"\s#|\s\|\s|&&", line)[0].strip()
            words = shlex.split(line) if line else []
            if words[: len(prefix.split())] == prefix.split():
                found.append((where, words))
    return found


@pytest.mark.parametrize("where, argv", commands("fwm-rl"), ids=[" ".join(a[:3]) for _, a in commands("fwm-rl")])
def test_fwm_rl_commands_parse(where, argv):
    try:
        build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"{where}: {' '.join(argv)} does not parse (exit {exc.code})")


def test_scripts_shown_exist():
    shown = {argv[1] for _, argv in commands("python") if len(argv) > 1 and argv[1].startswith("scripts/")}
    shown |= {argv[3] for _, argv in commands("torchrun") if len(argv) > 3 and argv[3].startswith("scripts/")}
    assert shown, "no scripts found in the docs"
    missing = sorted(name for name in shown if not (ROOT / name).is_file())
    assert not missing, f"the docs show scripts that do not exist: {missing}"


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_resolve():
    """Every relative link or image of the docs (``[text](path)``, ``![alt](path)``) names a file or folder that exists."""
    broken = []
    for path in DOCS:
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (path.parent / target.split("#")[0]).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, f"links to nothing: {broken}"
