"""Recurrent actor-critic policies: one memory core feeding a policy head and a value head.

Paper section 4.2: the agent is a recurrent core (an LSTM with a Fast Weight
Memory, or a plain LSTM baseline) whose output ``h_t`` gives the action logits
``W_pi h_t`` and the value ``W_v h_t``. Both heads backpropagate into the
shared core, so the value loss trains the memory too.

The cores here: :class:`LSTMCore`, :class:`GRUCore` and the FWM's ``FWMLSTM``. The algorithm never looks inside
the memory state: a core is any module with

* ``initial_state(batch_size, device, dtype)`` -> a tensor or a nested tuple of tensors (the empty memory;
  named tuples and ``None`` entries allowed),
* ``forward(x [T, B, in], state, episode_starts [T, B], need_state) -> (out [T, B, H], state)``,
  where ``episode_starts[t, b]`` empties row ``b``'s memory before step ``t``,
* ``output_size``,
* ``state_rows(state, rows)`` -> the state of batch rows ``rows`` only (for minibatches of environments),
* ``state_batch_dims(state)`` -> the batch dimension of each of its tensors, in the state's shape,

so the LSTM's ``(h, c)``, the GRU's ``h`` and the FWM's ``((h, c), F)`` are handled alike, and a
new memory needs no change to the algorithm. A rollout calls the core one step
at a time; the update replays the whole rollout with one sequence call (for the
FWM, the exact chunked form of :mod:`fwm_rl.memory`).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import ConstantSchedule
from torch import Tensor, nn

from fwm_rl.agents.rollout_step import applies as fused_step_applies
from fwm_rl.agents.rollout_step import fwm_step, sample_actions
from fwm_rl.memory import FWMLSTM, RNNState, map_state, rnn_with_resets
from fwm_rl.memory.common import rebuild_state, state_leaves

__all__ = ["FwmPolicy", "GRUCore", "GruPolicy", "LSTMCore", "LstmPolicy", "RecurrentActorCriticPolicy", "State",
           "detach_state"]

#: An opaque memory state: a tensor or a (nested) tuple of tensors.
State = Any


def detach_state(state: State) -> State:
    """The same state (a tensor, or a nested tuple: named tuples keep their type) with every tensor detached."""
    return map_state(state, Tensor.detach)


class _TorchRNNCore(nn.Module):
    """One layer of a PyTorch RNN (held under ``name``: the state-dict keys are ``lstm.*`` / ``gru.*``) with per-row
    episode resets (:func:`~fwm_rl.memory.rnn_with_resets`); every state tensor is ``[1, B, hidden_size]``."""

    def __init__(self, rnn: nn.LSTM | nn.GRU, name: str) -> None:
        super().__init__()
        setattr(self, name, rnn)
        self._rnn_name = name
        self.output_size = rnn.hidden_size

    @property
    def rnn(self) -> nn.LSTM | nn.GRU:
        return getattr(self, self._rnn_name)

    def _zeros(self, batch_size: int, device=None, dtype=None) -> Tensor:
        p = self.rnn.weight_hh_l0
        return torch.zeros(1, batch_size, self.output_size, device=device or p.device, dtype=dtype or p.dtype)

    @staticmethod
    def state_batch_dims(state: RNNState) -> RNNState:
        """Every state tensor is ``[1, B, H]``: batch dimension 1, in the state's shape."""
        return rebuild_state(state, [1] * len(state_leaves(state)))

    @staticmethod
    def state_rows(state: RNNState, rows: Tensor | slice) -> RNNState:
        """The state of batch rows ``rows`` only."""
        return map_state(state, lambda s: s[:, rows])

    def forward(
        self, x: Tensor, state: RNNState | None = None, episode_starts: Tensor | None = None, need_state: bool = True
    ) -> tuple[Tensor, RNNState | None]:
        state = self.initial_state(x.shape[1], x.device, x.dtype) if state is None else state
        out, state = rnn_with_resets(self.rnn, x, state, None if episode_starts is None else episode_starts.bool())
        return out, (state if need_state else None)


class LSTMCore(_TorchRNNCore):
    """``nn.LSTM`` with per-row episode resets; state ``(h, c)``, each ``[1, B, hidden_size]``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(nn.LSTM(input_size, hidden_size), "lstm")

    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple[Tensor, Tensor]:
        zeros = self._zeros(batch_size, device, dtype)
        return zeros, zeros.clone()


class GRUCore(_TorchRNNCore):
    """``nn.GRU`` with per-row episode resets; state ``h``, ``[1, B, hidden_size]``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(nn.GRU(input_size, hidden_size), "gru")

    def initial_state(self, batch_size: int, device=None, dtype=None) -> Tensor:
        return self._zeros(batch_size, device, dtype)


class RecurrentActorCriticPolicy(BasePolicy):
    """Actor-critic with a recurrent core and two linear heads (policy ``Linear(H, n_actions)``,
    value ``Linear(H, 1)``), for discrete actions and flat observations.

    Subclasses build the core in :meth:`make_core`. The optimizer defaults to Adam with
    ``eps=1e-4`` (the authors' setting); heads keep PyTorch's default initialisation.

    Args:
        observation_space: a flat ``Box``.
        action_space: ``Discrete``.
        lr_schedule: learning rate schedule (SB3 convention; the optimizer starts at ``lr_schedule(1)``).
        optimizer_class, optimizer_kwargs: the optimizer (default Adam, ``eps=1e-4``).
        **core_kwargs: passed to :meth:`make_core` (e.g. ``hidden_size``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **core_kwargs: Any,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"{type(self).__name__} needs a Discrete action space, got {action_space}")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"{type(self).__name__} needs a flat Box observation space, got {observation_space}")
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs={"eps": 1e-4} if optimizer_kwargs is None else optimizer_kwargs,
            normalize_images=False,
        )
        self.core_kwargs = core_kwargs
        self.core = self.make_core(int(observation_space.shape[0]), **core_kwargs)
        self.action_net = nn.Linear(self.core.output_size, int(action_space.n))
        self.value_net = nn.Linear(self.core.output_size, 1)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    @abstractmethod
    def make_core(self, input_size: int, **core_kwargs: Any) -> nn.Module:
        """Build the recurrent core (see the module docstring for its interface)."""

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # What ``BasePolicy.save``/``load`` rebuild the policy from; the learning rate is the
        # optimizer's current one (an algorithm sets it again before every update).
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=ConstantSchedule(self.optimizer.param_groups[0]["lr"]),
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            **self.core_kwargs,
        )

    # ------------------------------------------------------------------ state
    def initial_state(self, n_envs: int) -> State:
        """The empty memory for ``n_envs`` environments."""
        return self.core.initial_state(n_envs, device=self.device)

    @property
    def dtype(self) -> torch.dtype:
        return self.action_net.weight.dtype

    def _core(self, obs: Tensor, state: State, episode_starts: Tensor, need_state: bool = True) -> tuple[Tensor, State]:
        """Core outputs for ``obs: [T, B, obs_dim]`` from ``state`` with resets ``episode_starts: [T, B]``."""
        return self.core(obs.to(self.dtype), state, episode_starts=episode_starts.bool(), need_state=need_state)

    # ------------------------------------------------------------------ steps
    def forward(
        self,
        obs: Tensor,
        state: State,
        episode_starts: Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """One step for ``obs: [B, obs_dim]``: ``(actions [B], values [B], log_probs [B], new state)``.

        ``episode_starts: [B]`` empties the memory of those rows first. Sampling draws one uniform
        number per row from ``generator`` (default: torch's global generator of the device) and
        inverts the action distribution's CDF (:func:`~fwm_rl.agents.rollout_step.sample_actions`).
        """
        out, state = self._core(obs.unsqueeze(0), state, episode_starts.unsqueeze(0))
        out = out.squeeze(0)
        log_probs = torch.log_softmax(self.action_net(out), -1)
        if deterministic:
            actions = log_probs.argmax(-1)
        else:
            actions = sample_actions(log_probs, torch.rand(out.shape[0], generator=generator, device=out.device, dtype=out.dtype))
        return actions, self.value_net(out).squeeze(-1), log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), state

    def evaluate_actions(self, obs: Tensor, actions: Tensor, state: State, episode_starts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Replay a rollout with gradients: ``obs [T, B, obs_dim]``, ``actions [T, B]`` from ``state``
        with resets ``episode_starts [T, B]``. Returns ``(values, log_probs, entropy)``, each ``[T, B]``.

        The whole sequence is one core call (full backpropagation through time).
        """
        out, _ = self._core(obs, state, episode_starts, need_state=False)
        log_p = torch.log_softmax(self.action_net(out), -1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return self.value_net(out).squeeze(-1), log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy

    def predict_values(self, obs: Tensor, state: State, episode_starts: Tensor) -> Tensor:
        """Values ``[B]`` of one step ``obs: [B, obs_dim]`` from ``state``."""
        out, _ = self._core(obs.unsqueeze(0), state, episode_starts.unsqueeze(0), need_state=False)
        return self.value_net(out.squeeze(0)).squeeze(-1)

    def _predict(self, observation: Tensor, deterministic: bool = False) -> Tensor:
        """Actions for ``observation [B, obs_dim]`` as the first step of an episode (empty memory);
        :meth:`predict` with ``state`` acts within an episode."""
        starts = torch.ones(observation.shape[0], dtype=torch.bool, device=self.device)
        return self(observation, self.initial_state(observation.shape[0]), starts, deterministic)[0]

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: State | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, State]:
        """SB3's ``predict`` with memory: returns ``(actions, state)``.

        ``state`` is what the previous call returned (None: empty memory); ``episode_start``
        (``[B]`` booleans, default all False) empties the memory of those rows first. The state is
        an opaque tensor or tuple of tensors on the policy's device.
        """
        self.set_training_mode(False)
        obs, vectorized = self.obs_to_tensor(observation)
        n = obs.shape[0]
        if state is None:
            state = self.initial_state(n)
        starts = torch.zeros(n, dtype=torch.bool, device=self.device)
        if episode_start is not None:
            flags = np.asarray(episode_start, dtype=bool).reshape(-1)
            if flags.shape != (n,):
                raise ValueError(f"episode_start must have one flag per observation ({n}), got shape {np.shape(episode_start)}")
            starts = torch.as_tensor(flags, device=self.device)
        with torch.no_grad():
            actions, _, _, state = self(obs, state, starts, deterministic)
        actions = actions.cpu().numpy()
        if not vectorized:
            actions = actions.squeeze(0)
        return actions, state


class FwmPolicy(RecurrentActorCriticPolicy):
    """The paper's FWM agent: ``FWMLSTM(obs_dim, 32, d_fwm=16, n_reads=3)`` + linear heads.

    Defaults follow the authors' meta-RL code (see the README's FWM section): residual output
    ``h_t + FWM(h_t, F_t)``, write bias +1, update scale ``1/d_fwm``, no tanh on the first query.
    With 17 inputs and 3 actions it has 10,933 parameters.
    """

    def make_core(
        self,
        input_size: int,
        hidden_size: int = 32,
        d_fwm: int = 16,
        n_reads: int = 3,
        residual: bool = True,
        beta_bias: float = 1.0,
        update_scale: float | None = None,
        tanh_first_query: bool = False,
        tanh_read_keys: bool = False,
        impl: str = "auto",
    ) -> nn.Module:
        return FWMLSTM(
            input_size,
            hidden_size,
            d_fwm=d_fwm,
            n_reads=n_reads,
            residual=residual,
            beta_bias=beta_bias,
            update_scale=1.0 / d_fwm if update_scale is None else update_scale,
            tanh_first_query=tanh_first_query,  # the authors' meta-RL cell has no tanh on the
            tanh_read_keys=tanh_read_keys,  # first query nor on the read keys
            impl=impl,  # "step": the reference recurrence instead of the chunked form (speed comparisons)
        )

    def forward(
        self,
        obs: Tensor,
        state: State,
        episode_starts: Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """One step, as :meth:`RecurrentActorCriticPolicy.forward`; from a factored rollout state
        without autograd it is the fused step of :mod:`fwm_rl.agents.rollout_step`."""
        if not torch.is_grad_enabled() and fused_step_applies(self, state):
            return fwm_step(self, obs, state, episode_starts, deterministic, generator)
        return super().forward(obs, state, episode_starts, deterministic, generator)

    def predict_values(self, obs: Tensor, state: State, episode_starts: Tensor) -> Tensor:
        if not torch.is_grad_enabled() and fused_step_applies(self, state):
            return fwm_step(self, obs, state, episode_starts, deterministic=True)[1]
        return super().predict_values(obs, state, episode_starts)

    def initial_state(self, n_envs: int) -> State:
        """The empty memory, its fast weights factored (:class:`fwm_rl.memory.FactoredState`): a
        rollout's one-step calls then cost ``O(steps x d)`` instead of ``O(d^3)`` passes over ``F``."""
        return self.core.initial_state(n_envs, device=self.device, factored=self.core.memory.impl != "step")


class LstmPolicy(RecurrentActorCriticPolicy):
    """The LSTM baseline: one ``nn.LSTM`` layer (default 512 units, the paper's smallest) + linear heads."""

    def make_core(self, input_size: int, hidden_size: int = 512) -> nn.Module:
        return LSTMCore(input_size, hidden_size)


class GruPolicy(RecurrentActorCriticPolicy):
    """A GRU baseline: one ``nn.GRU`` layer (default 128 units) + linear heads. POPGym (Morad et al., ICLR 2023)
    found the GRU the strongest of its memory models across its tasks."""

    def make_core(self, input_size: int, hidden_size: int = 128) -> nn.Module:
        return GRUCore(input_size, hidden_size)
