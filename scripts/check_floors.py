"""Do the dependency floors of ``pyproject.toml`` really work? Install them and run tests.

    python scripts/check_floors.py                       # floors of every dependency but torch, then a test selection
    python scripts/check_floors.py --torch "torch==2.4.0" --tests tests/memory/test_memory.py

It makes a fresh virtual environment, installs torch (``--torch``, default ``torch==2.13.0``, the local CPU
wheel: an older torch from the package index pulls several GB of CUDA packages), then every other dependency at
exactly its floor (``pkg>=X`` becomes ``pkg==X``, the ``dev`` extra included), then the project itself without
dependencies, and runs ``--tests`` with that environment's Python. Exit status 0 when all of it worked. Needs
the package index (no other network).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Tests that touch every dependency: environments (gymnasium, numpy, networkx), agents (stable-baselines3,
#: torch, tqdm, rich), runs and plots (tensorboard, matplotlib), the memory, the docs' examples.
DEFAULT_TESTS = [
    "tests/envs/test_envs_api.py",
    "tests/envs/test_envs_autoreset.py",
    "tests/agents/test_agents.py",
    "tests/agents/test_ppo.py",
    "tests/agents/test_env_training.py",
    "tests/memory/test_memory.py",
    "tests/engine/test_runs.py",
    "tests/test_docs.py",
    "tests/agents/test_hyperparams.py",
    "tests/agents/test_spaces.py",
]


def floors(pyproject: Path) -> list[str]:
    """``name==floor`` for every dependency (and ``dev`` extra) of ``pyproject`` except torch (an exact pin: that version)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    pins = []
    for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        match = re.fullmatch(
            r"\s*([A-Za-z0-9_.-]+)\s*(?:>=|==)\s*([0-9][^,;\s]*)\s*", requirement
        )  # (an exact pin is its floor)
        if match is None:
            raise SystemExit(
                f"check_floors.py: cannot read a floor from {requirement!r} (expected 'name>=version' or 'name==version')"
            )
        name, version = match.groups()
        if name != "torch":
            pins.append(f"{name}=={version}")
    return pins


def run(command: list[str], cwd: Path | None = None) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=cwd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--torch", default="torch==2.13.0", help="the torch requirement to install first (default torch==2.13.0)"
    )
    parser.add_argument(
        "--tests", nargs="+", default=DEFAULT_TESTS, help="pytest arguments (default: a selection touching every dependency)"
    )
    parser.add_argument("--list", action="store_true", help="print the floors and exit")
    args = parser.parse_args(argv)
    pins = floors(ROOT / "pyproject.toml")
    if args.list:
        print("\n".join([args.torch, *pins]))
        return 0
    with tempfile.TemporaryDirectory(prefix="fwm-floors-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        python = str(env_dir / "bin" / "python")
        try:
            run([python, "-m", "pip", "install", "--quiet", args.torch])
            run([python, "-m", "pip", "install", "--quiet", *pins])
            run([python, "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)])
            run([python, "-m", "pip", "check"])
            run([python, "-m", "pip", "list", "--format=freeze"])
            run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests], cwd=ROOT)
        except subprocess.CalledProcessError as exc:
            print(f"check_floors.py: failed ({' '.join(exc.cmd[:4])} ... exit {exc.returncode})", file=sys.stderr)
            return 1
    print("the floors work:", ", ".join([args.torch, *pins]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
