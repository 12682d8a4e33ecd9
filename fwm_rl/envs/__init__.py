"""Meta-RL metro-graph environments of the paper (section 4.2, appendix I).

Importing this package registers ``FWMGraph-v0``:

* ``gym.make("FWMGraph-v0", split="random"|"train"|"test", ...)`` -> :class:`FWMGraphEnv`;
* ``gym.make_vec("FWMGraph-v0", num_envs=600, split="train")`` -> :class:`FWMGraphVectorEnv`
  (native batched numpy; ``device="cuda"`` for torch tensors).

Both run on :class:`GraphBatch`, the batched dynamics core that agents may also use directly.
"""

import gymnasium as gym

from fwm_rl.envs.core import SEMANTICS, GraphBatch, TaskConfig
from fwm_rl.envs.graph_env import FWMGraphEnv
from fwm_rl.envs.graphs import (
    paper_graph_sets,
    sample_adjacency_batch,
    sample_adjacency_matrix,
)
from fwm_rl.envs.vector_env import FWMGraphVectorEnv

ENV_ID = "FWMGraph-v0"

if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="fwm_rl.envs.graph_env:FWMGraphEnv",
        vector_entry_point="fwm_rl.envs.vector_env:FWMGraphVectorEnv",
    )

__all__ = [
    "ENV_ID",
    "SEMANTICS",
    "FWMGraphEnv",
    "FWMGraphVectorEnv",
    "GraphBatch",
    "TaskConfig",
    "paper_graph_sets",
    "sample_adjacency_batch",
    "sample_adjacency_matrix",
]
