import os

import pytest
import torch

# The fused rollout step is compiled only in the test that checks compilation (tests/agents/test_agents.py):
# elsewhere compiling each small configuration would cost more time than the tests themselves.
os.environ.setdefault("FWM_RL_COMPILE", "0")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests are small; extra intra-op threads only add contention on 2-core CI."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def float64_default():
    """float64 as torch's default dtype for a whole test module (``pytest.mark.usefixtures``)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
