"""Meta-RL metro-graph environments of the paper (section 4.2, appendix I).

Importing this package registers ``FWMGraph-v0`` and the ids of :data:`ENV_IDS`:

* ``gym.make("FWMGraph-v0", split="random"|"train"|"test", ...)`` -> :class:`FWMGraphEnv`;
* ``gym.make_vec("FWMGraph-v0", num_envs=600, split="train")`` -> :class:`FWMGraphVectorEnv`
  (native batched numpy; ``device="cuda"`` for torch tensors).

Both run on :class:`GraphBatch`, the batched dynamics core that agents may also use directly.
It also registers memory tasks from classic control, ``CartPoleNoVel-v1``, ``MountainCarNoVel-v0``,
``AcrobotNoVel-v1`` and ``PendulumNoVel-v1`` (:data:`~fwm_rl.envs.wrappers.NO_VELOCITY_IDS`,
:class:`~fwm_rl.envs.wrappers.HideVelocity`), and offers :func:`~fwm_rl.envs.wrappers.sb3_compatible`
(:class:`~fwm_rl.envs.wrappers.TupleToDict`), which gives envs with ``Tuple`` observations (POPGym's
Autoencode) the ``Dict`` space that stable-baselines3 accepts.
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
from fwm_rl.envs.wrappers import NO_VELOCITY_IDS, HideVelocity, TupleToDict, sb3_compatible

ENV_ID = "FWMGraph-v0"

#: Registered ids -> the keyword arguments they fix, so that tools taking only an id reach the paper's
#: sets and the released code's rules (keyword arguments given to ``gym.make`` still override them).
ENV_IDS: dict[str, dict[str, str]] = {
    ENV_ID: {},  # a fresh Listing-1 graph at every reset, the paper's rules
    "FWMGraphTrain-v0": {"split": "train"},
    "FWMGraphValid-v0": {"split": "valid"},
    "FWMGraphTest-v0": {"split": "test"},
    "FWMGraphReleased-v0": {"semantics": "released_code"},
    "FWMGraphReleasedTrain-v0": {"split": "train", "semantics": "released_code"},
    "FWMGraphReleasedValid-v0": {"split": "valid", "semantics": "released_code"},
    "FWMGraphReleasedTest-v0": {"split": "test", "semantics": "released_code"},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in gym.registry:
        gym.register(
            id=_id,
            entry_point="fwm_rl.envs.graph_env:FWMGraphEnv",
            vector_entry_point="fwm_rl.envs.vector_env:FWMGraphVectorEnv",
            kwargs=dict(_kwargs),
        )

for _id, _base in NO_VELOCITY_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="fwm_rl.envs.wrappers:make_no_velocity", kwargs={"env_id": _base})

__all__ = [
    "ENV_ID",
    "ENV_IDS",
    "SEMANTICS",
    "FWMGraphEnv",
    "FWMGraphVectorEnv",
    "GraphBatch",
    "HideVelocity",
    "TaskConfig",
    "TupleToDict",
    "paper_graph_sets",
    "sample_adjacency_batch",
    "sample_adjacency_matrix",
    "sb3_compatible",
]
