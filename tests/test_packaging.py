"""Packaging: the dependency floors that scripts/check_floors.py installs (it runs them, with the package index)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_dependency_has_a_floor_to_check():
    spec = importlib.util.spec_from_file_location("check_floors", ROOT / "scripts" / "check_floors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pins = dict(pin.split("==") for pin in module.floors(ROOT / "pyproject.toml"))
    assert {"gymnasium", "stable-baselines3", "numpy", "matplotlib", "tensorboard", "pytest"} <= set(pins)
    assert "torch" not in pins  # installed first, separately (--torch)
    # stable-baselines3 2.3-2.5 pin gymnasium < 1.1, the floor the vector env needs
    assert tuple(int(x) for x in pins["stable-baselines3"].split(".")[:2]) >= (2, 7)  # ConstantSchedule, FloatSchedule
