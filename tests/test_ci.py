"""CI's second pass (``.ci/run``): the numerically sensitive tests run once more under switches that move torch onto
other CPU kernels, as if on a second CPU. Here: the switches really change float results, and the pass names tests
that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]

#: Twenty Adam steps of a two-layer LSTM and a linear layer (matrix products, LSTM cells, softmax); the weights are
#: saved to ``argv[1]``.
PROBE = """
import sys, torch
torch.set_num_threads(1)
torch.manual_seed(0)
lstm, out = torch.nn.LSTM(12, 16, 2), torch.nn.Linear(16, 40)
params = [*lstm.parameters(), *out.parameters()]
opt = torch.optim.Adam(params, 3e-3)
x, y = torch.randn(30, 4, 12), torch.randint(0, 40, (120,))
for _ in range(20):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(out(lstm(x)[0]).reshape(-1, 40), y).backward()
    opt.step()
torch.save(torch.cat([p.detach().reshape(-1) for p in params]), sys.argv[1])
"""


def ci_array(name: str) -> list[str]:
    """The words of the bash array ``name=(...)`` in ``.ci/run``."""
    match = re.search(rf"^{name}=\((.*?)\)", (ROOT / ".ci" / "run").read_text(), re.M | re.S)
    assert match, f".ci/run defines no {name}=(...)"
    return match.group(1).split()


def probe_weights(out: Path, env: dict[str, str]) -> torch.Tensor:
    """:data:`PROBE`'s weights, trained in a fresh process with the environment ``env``."""
    subprocess.run([sys.executable, "-c", PROBE, str(out)], env=env, check=True, timeout=120)
    return torch.load(out, weights_only=True)


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() == "DEFAULT", reason="this CPU runs ATen's scalar kernels already")
def test_the_second_pass_switches_change_float_results(tmp_path):
    switches = dict(word.split("=", 1) for word in ci_array("other_cpu"))
    native_env = {k: v for k, v in os.environ.items() if k not in switches}
    native = probe_weights(tmp_path / "native.pt", native_env)
    other = probe_weights(tmp_path / "other.pt", {**native_env, **switches})
    # Other kernels round differently (3.5e-7 on the development machine), but it is the same training.
    assert 0 < (native - other).abs().max().item() < 1e-4


def test_the_second_pass_names_tests_that_exist():
    for target in ci_array("numerics"):
        path, _, name = target.partition("::")
        assert (ROOT / path).is_file(), target
        assert not name or re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), target
