"""The package's imports run one way (read from the source, nothing executed): ``checks`` at the bottom, then
``memory`` and ``envs``, then ``engine`` (the training machinery, its ``distributed`` part included), then the
experiments (``agents``, ``babi``, ``lm``), then ``cli`` on top. A module imports its own package and the layers
below it, never one above it nor a sibling package of its own layer (but for :data:`SIBLINGS`; imports inside functions count: a deferred
import is still a dependency; those under ``TYPE_CHECKING`` do not run and are left to the type checker), and the
runtime imports between modules have no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fwm_rl"
#: Each top-level part of the package and its layer (a module may import the layers below its own).
LAYERS = {"checks": 0, "memory": 1, "envs": 1, "engine": 2, "agents": 3, "babi": 3, "lm": 3, "cli": 4}
#: Imports between parts of one layer that are allowed, one way: the LM's embedded corpus is text of the bAbI generator.
SIBLINGS = {("lm", "babi")}


def module_name(path: Path) -> str:
    parts = ["fwm_rl", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> list[tuple[str, int]]:
    """The ``fwm_rl`` modules ``module`` imports at run time (a name that is a submodule counts as that module), with
    the line of each import."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = (
                node.module
                if node.level == 0
                else ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).rstrip(".")
            )
            found += [
                (f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno) for alias in node.names
            ]
    return [(name, line) for name, line in found if name == "fwm_rl" or name.startswith("fwm_rl.")]


def part(module: str) -> str | None:
    """The top-level part of the package a module belongs to (None for the package's own ``__init__``)."""
    names = module.split(".")
    return names[1] if len(names) > 1 else None


def test_every_part_of_the_package_has_a_layer():
    assert {part(m) for m in MODULES} - {None} == set(LAYERS)


def test_imports_run_down_the_layers():
    wrong = []
    for module in MODULES:
        own = part(module)
        for name, line in imports(module):
            other = part(name)
            if own is None or other == own or (own, other) in SIBLINGS:
                continue
            # (the package itself, for its __version__, loads envs: a layer above memory and envs may import it)
            if LAYERS[own] <= LAYERS["envs"] if other is None else LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module}:{line} imports {name}")
    assert not wrong, "imports against the layers checks < memory, envs < engine < agents, babi, lm < cli:\n" + "\n".join(
        wrong
    )


def test_no_import_cycles():
    graph = {module: {name for name, _ in imports(module) if name in MODULES and name != module} for module in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycles.append(" -> ".join(path[path.index(name) :] + [name]))
            elif name not in state:
                visit(name, path + [name])
        state[module] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
