"""Recurrent A2C agents (paper section 4.2) and recurrent PPO: FWM, LSTM and GRU memories on stable-baselines3."""

from fwm_rl.agents.a2c import RecurrentA2C, RecurrentRolloutBuffer
from fwm_rl.agents.policies import FwmPolicy, GRUCore, GruPolicy, LSTMCore, LstmPolicy, RecurrentActorCriticPolicy
from fwm_rl.agents.ppo import RecurrentPPO
from fwm_rl.agents.pretrained import PRETRAINED, load_pretrained
from fwm_rl.agents.vec_env import FWMGraphVecEnv

__all__ = [
    "PRETRAINED",
    "FWMGraphVecEnv",
    "FwmPolicy",
    "GRUCore",
    "GruPolicy",
    "LSTMCore",
    "LstmPolicy",
    "RecurrentA2C",
    "RecurrentActorCriticPolicy",
    "RecurrentPPO",
    "RecurrentRolloutBuffer",
    "load_pretrained",
]
