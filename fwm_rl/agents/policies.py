"""Recurrent actor-critic policies: one memory core feeding a policy head and a value head.

Paper section 4.2: the agent is a recurrent core (an LSTM with a Fast Weight
Memory, or a plain LSTM baseline) whose output ``h_t`` gives the action logits
``W_pi h_t`` and the value ``W_v h_t``. Both heads backpropagate into the
shared core, so the value loss trains the memory too.

Beyond the paper, the policy is built as stable-baselines3 builds its own (:class:`RecurrentActorCriticPolicy`):
SB3's features extractors before the core, optional MLP heads after it (``net_arch``), a critic core of its own
(``shared_core=False``, as sb3-contrib's ``enable_critic_lstm``), and every observation and action space SB3 takes,
through SB3's preprocessing and action distributions. With the defaults it is the paper's agent, parameter for
parameter.

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
from functools import cached_property, partial
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution, make_proba_distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_obs_shape, is_image_space
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import ConstantSchedule
from torch import Tensor, nn

from fwm_rl.agents.rollout_step import applies as fused_step_applies
from fwm_rl.agents.rollout_step import fwm_step, sample_actions
from fwm_rl.checks import check_choice, check_real
from fwm_rl.memory import FWMLSTM, FastWeightMemory, RNNState, map_state, rnn_with_resets, run_fwmlstms
from fwm_rl.memory.common import rebuild_state, state_leaves

__all__ = [
    "ACTIVATIONS",
    "ACTION_SPACES",
    "ActorCriticCores",
    "FWM_OUTPUTS",
    "FwmPolicy",
    "GRUCore",
    "GruPolicy",
    "LSTMCore",
    "LstmPolicy",
    "RecurrentActorCriticPolicy",
    "State",
    "tree_map",
    "detach_state",
]

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


class ActorCriticCores(nn.Module):
    """Two cores of one kind, one for the policy and one for the value (``shared_core=False``, as sb3-contrib's
    ``enable_critic_lstm``): the state is ``(actor_state, critic_state)``, the output the pair of their outputs."""

    def __init__(self, actor: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.actor, self.critic = actor, critic
        self.output_size = actor.output_size

    def initial_state(self, batch_size: int, device=None, dtype=None, **kwargs: Any) -> tuple[State, State]:
        return tuple(core.initial_state(batch_size, device, dtype, **kwargs) for core in (self.actor, self.critic))

    def state_batch_dims(self, state: tuple[State, State]) -> tuple[State, State]:
        return self.actor.state_batch_dims(state[0]), self.critic.state_batch_dims(state[1])

    def state_rows(self, state: tuple[State, State], rows: Tensor | slice) -> tuple[State, State]:
        return self.actor.state_rows(state[0], rows), self.critic.state_rows(state[1], rows)

    def forward(
        self, x: Tensor, state: tuple[State, State], episode_starts: Tensor | None = None, need_state: bool = True
    ) -> tuple[tuple[Tensor, Tensor], tuple[State, State] | None]:
        if isinstance(self.actor, FWMLSTM) and self.actor.pairs_with(self.critic):  # both memories as one batch
            (actor_out, actor_state), (critic_out, critic_state) = run_fwmlstms(
                (self.actor, self.critic), x, state, episode_starts, need_state=need_state
            )
        else:
            (actor_out, actor_state), (critic_out, critic_state) = (
                core(x, s, episode_starts=episode_starts, need_state=need_state)
                for core, s in zip((self.actor, self.critic), state)
            )
        return (actor_out, critic_out), ((actor_state, critic_state) if need_state else None)


#: The activation functions of the MLP layers, by the name a config gives.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
#: What an FWM core gives the heads (``fwm_output`` of a config): ``h_t + FWM(h_t, F_t)`` (section 3, the authors'
#: code; ``residual=True``), the reads alone, or both side by side, ``[h_t; FWM(h_t, F_t)]`` (``cat_h=True``).
FWM_OUTPUTS = ("sum", "reads", "both")
#: The action spaces a policy takes.
ACTION_SPACES = (spaces.Discrete, spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)


def tree_map(fn, obs: Tensor | dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
    """``fn`` applied to an observation tensor, or to each tensor of a ``Dict`` observation."""
    return {key: fn(value) for key, value in obs.items()} if isinstance(obs, dict) else fn(obs)


class RecurrentActorCriticPolicy(BasePolicy):
    """Actor-critic with a recurrent core, as stable-baselines3 builds its policies around one.

    An observation goes through SB3's preprocessing and a features extractor (default as SB3 chooses it: a ``Dict``
    through ``CombinedExtractor``, images (channels first) through ``NatureCNN``, anything else flattened), optional
    MLP layers (``features_net_arch``), the recurrent core (built by the subclass's :meth:`make_core`; with
    ``shared_core=False`` a second one of the same kind for the value), and SB3's ``MlpExtractor`` heads
    (``net_arch``; none by default) before the action and value layers. ``Discrete`` actions use the paper's
    categorical head, sampled by inverse transform from one uniform number per row
    (:func:`~fwm_rl.agents.rollout_step.sample_actions`, so a seeded generator gives the same actions on every path);
    ``Box`` (a diagonal Gaussian with a state-independent log-std), ``MultiDiscrete`` and ``MultiBinary`` actions
    use SB3's distributions (drawn from torch's global generator). With the defaults (flat ``Box``
    observations, ``Discrete`` actions) the heads are the paper's: ``Linear(H, n_actions)`` and ``Linear(H, 1)`` on
    the core's output.

    The optimizer defaults to Adam with ``eps=1e-4`` (the authors' setting); with ``ortho_init`` the layers outside
    the core get SB3's orthogonal initialisation (gains sqrt(2), 0.01 for the action layer, 1 for the value
    layer), else PyTorch's default.

    Args:
        observation_space: any space SB3 takes (``Box`` of any shape, ``Discrete``, ``MultiDiscrete``,
            ``MultiBinary``, ``Dict`` of those); a ``Tuple`` is refused (:func:`fwm_rl.envs.sb3_compatible` maps it to a
            ``Dict``).
        action_space: ``Discrete``, ``Box``, ``MultiDiscrete`` or ``MultiBinary``.
        lr_schedule: learning rate schedule (SB3 convention; the optimizer starts at ``lr_schedule(1)``).
        net_arch: the heads' MLP layers after the core (SB3's format: ``[64, 64]`` for each head, or
            ``dict(pi=[64], vf=[64])``); None: none.
        activation_fn: the activation of every MLP layer (SB3's default ``nn.Tanh``).
        ortho_init: SB3's orthogonal initialisation of the layers outside the core.
        shared_core: one core for both heads (the paper); False: the value head reads a core of its own.
        log_std_init: the initial log standard deviation of ``Box`` actions.
        features_extractor_class, features_extractor_kwargs: SB3's features extractor (default: ``CombinedExtractor``
            for a ``Dict``, ``NatureCNN`` for an image, else flatten).
        features_net_arch: MLP layers between the features and the core; None: none.
        normalize_images: divide image observations by 255 (SB3's).
        optimizer_class, optimizer_kwargs: the optimizer (default Adam, ``eps=1e-4``).
        **core_kwargs: passed to :meth:`make_core` (e.g. ``hidden_size``).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = False,
        shared_core: bool = True,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        features_net_arch: list[int] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **core_kwargs: Any,
    ) -> None:
        name = type(self).__name__
        if not isinstance(action_space, ACTION_SPACES):
            raise ValueError(f"{name} takes Discrete, Box, MultiDiscrete or MultiBinary actions, got {action_space}")
        if isinstance(observation_space, spaces.Tuple):
            raise ValueError(
                f"{name} cannot take the Tuple observation space {observation_space} (nor can SB3): wrap the "
                "env in fwm_rl.envs.TupleToDict (the trainer does)"
            )
        if features_extractor_class is None:  # SB3's choices: MultiInputPolicy, CnnPolicy, MlpPolicy
            features_extractor_class = (
                CombinedExtractor
                if isinstance(observation_space, spaces.Dict)
                else NatureCNN
                if is_image_space(observation_space)
                else FlattenExtractor
            )
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs={"eps": 1e-4} if optimizer_kwargs is None else optimizer_kwargs,
        )
        self.net_arch, self.activation_fn, self.ortho_init = net_arch, activation_fn, ortho_init
        self.shared_core, self.log_std_init = shared_core, log_std_init
        self.features_net_arch = list(features_net_arch or [])
        self.core_kwargs = core_kwargs
        self.features_extractor = self.make_features_extractor()
        layers: list[nn.Module] = []
        size = int(self.features_extractor.features_dim)
        for width in self.features_net_arch:
            layers += [nn.Linear(size, width), activation_fn()]
            size = width
        self.features_net = nn.Sequential(*layers)
        self.core = self.make_core(size, **core_kwargs)
        if not shared_core:
            self.core = ActorCriticCores(self.core, self.make_core(size, **core_kwargs))
        self.mlp_extractor = MlpExtractor(
            self.core.output_size, net_arch=[] if net_arch is None else net_arch, activation_fn=activation_fn
        )
        self.action_dist = None if isinstance(action_space, spaces.Discrete) else make_proba_distribution(action_space)
        latent_pi = self.mlp_extractor.latent_dim_pi
        if isinstance(self.action_dist, DiagGaussianDistribution):
            self.action_net, self.log_std = self.action_dist.proba_distribution_net(latent_pi, log_std_init)
        elif self.action_dist is not None:
            self.action_net = self.action_dist.proba_distribution_net(latent_pi)
        else:
            self.action_net = nn.Linear(latent_pi, int(action_space.n))
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if ortho_init:
            gains = {
                self.features_extractor: np.sqrt(2),
                self.features_net: np.sqrt(2),
                self.mlp_extractor: np.sqrt(2),
                self.action_net: 0.01,
                self.value_net: 1.0,
            }
            for module, gain in gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        lr = lr_schedule(1)
        self.optimizer = self.optimizer_class(self.optimizer_groups(lr), lr=lr, **self.optimizer_kwargs)

    @abstractmethod
    def make_core(self, input_size: int, **core_kwargs: Any) -> nn.Module:
        """Build the recurrent core (see the module docstring for its interface)."""

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's parameter groups at learning rate ``lr``: one, every parameter. A group with an ``lr_scale``
        trains at that factor times the algorithm's learning rate (:meth:`RecurrentA2C._update_learning_rate
        <fwm_rl.agents.RecurrentA2C._update_learning_rate>` keeps it as the schedule moves)."""
        return [{"params": list(self.parameters())}]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # What ``BasePolicy.save``/``load`` rebuild the policy from; the learning rate is the
        # optimizer's current one (an algorithm sets it again before every update).
        return dict(
            observation_space=self.observation_space,
            action_space=self.action_space,
            lr_schedule=ConstantSchedule(self.optimizer.param_groups[0]["lr"]),
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            ortho_init=self.ortho_init,
            shared_core=self.shared_core,
            log_std_init=self.log_std_init,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            features_net_arch=self.features_net_arch,
            normalize_images=self.normalize_images,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            **self.core_kwargs,
        )

    @cached_property
    def paper_heads(self) -> bool:
        """Whether the policy is the paper's shape: flat ``Box`` observations straight into one core, ``Discrete``
        actions, linear heads on the core's output (what :mod:`fwm_rl.agents.rollout_step` fuses)."""
        return (
            self.action_dist is None
            and self.shared_core
            and not self.features_net_arch
            and isinstance(self.features_extractor, FlattenExtractor)
            and isinstance(self.observation_space, spaces.Box)
            and len(self.observation_space.shape) == 1
            and self.mlp_extractor.latent_dim_pi == self.core.output_size
            and not list(self.mlp_extractor.parameters())
        )

    # ------------------------------------------------------------------ state
    def initial_state(self, n_envs: int) -> State:
        """The empty memory for ``n_envs`` environments."""
        return self.core.initial_state(n_envs, device=self.device)

    @property
    def dtype(self) -> torch.dtype:
        return self.value_net.weight.dtype

    def observation_tensor(self, obs: np.ndarray | dict[str, np.ndarray] | Tensor) -> Tensor | dict[str, Tensor]:
        """A batch of observations ``[B, ...]`` from a ``VecEnv`` as float32 tensors on the policy's device, shaped
        ``[B, *SB3's observation shape]`` (a ``Dict``: one tensor per key)."""

        def convert(x, space: spaces.Space) -> Tensor:
            x = torch.as_tensor(x, device=self.device)
            return x.reshape(x.shape[0], *get_obs_shape(space)).to(torch.float32)

        if isinstance(self.observation_space, spaces.Dict):
            return {key: convert(obs[key], space) for key, space in self.observation_space.spaces.items()}
        return convert(obs, self.observation_space)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """Actions as the environment takes them: on the host, a ``Box``'s clipped to its bounds (SB3's convention;
        the rollout keeps the unclipped ones), discrete ones as integers."""
        out = actions.cpu().numpy()
        space = self.action_space
        if isinstance(space, spaces.Box):
            return np.clip(out, space.low, space.high)
        return out.astype(space.dtype) if isinstance(space, (spaces.MultiDiscrete, spaces.MultiBinary)) else out

    def _features(self, obs: Tensor | dict[str, Tensor]) -> Tensor:
        """The core's input ``[N, in]`` for observations ``[N, ...]`` (SB3's preprocessing and features extractor,
        then ``features_net``). A flat ``Box`` keeps the policy's precision (SB3's preprocessing rounds to float32)."""
        if isinstance(self.observation_space, spaces.Box) and not is_image_space(self.observation_space):
            features = self.features_extractor(obs.to(self.dtype))
        else:
            features = self.extract_features(obs, self.features_extractor).to(self.dtype)
        return self.features_net(features)

    def _core(
        self, obs: Tensor | dict[str, Tensor], state: State, episode_starts: Tensor, need_state: bool = True
    ) -> tuple[Tensor, Tensor, State]:
        """The latent of the policy and of the value head, each ``[T, B, ...]``, and the new state, for ``obs [T, B, ...]``
        from ``state`` with resets ``episode_starts: [T, B]``."""
        T, B = episode_starts.shape
        features = self._features(tree_map(lambda x: x.reshape(T * B, *x.shape[2:]), obs))
        out, state = self.core(features.reshape(T, B, -1), state, episode_starts=episode_starts.bool(), need_state=need_state)
        pi, vf = out if isinstance(out, tuple) else (out, out)
        return self.mlp_extractor.forward_actor(pi), self.mlp_extractor.forward_critic(vf), state

    def _distribution(self, latent_pi: Tensor) -> Distribution:
        """SB3's action distribution (non-``Discrete`` actions) for the policy latent ``[N, ...]``."""
        params = self.action_net(latent_pi)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return self.action_dist.proba_distribution(params, self.log_std)
        return self.action_dist.proba_distribution(action_logits=params)

    # ------------------------------------------------------------------ steps
    def forward(
        self,
        obs: Tensor | dict[str, Tensor],
        state: State,
        episode_starts: Tensor,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """One step for observations ``[B, ...]``: ``(actions, values [B], log_probs [B], new state)``.

        ``episode_starts: [B]`` empties the memory of those rows first. ``Discrete`` actions (``[B]``) are drawn with
        one uniform number per row from ``generator`` (default: torch's global generator of the device) by inverting
        the distribution's CDF (:func:`~fwm_rl.agents.rollout_step.sample_actions`); other actions (``[B, ...]``,
        unclipped) by SB3's distribution.
        """
        latent_pi, latent_vf, state = self._core(tree_map(lambda x: x.unsqueeze(0), obs), state, episode_starts.unsqueeze(0))
        latent_pi, values = latent_pi.squeeze(0), self.value_net(latent_vf.squeeze(0)).squeeze(-1)
        if self.action_dist is not None:
            dist = self._distribution(latent_pi)
            actions = dist.get_actions(deterministic=deterministic)
            return actions, values, dist.log_prob(actions), state
        log_probs = torch.log_softmax(self.action_net(latent_pi), -1)
        if deterministic:
            actions = log_probs.argmax(-1)
        else:
            uniform = torch.rand(latent_pi.shape[0], generator=generator, device=latent_pi.device, dtype=latent_pi.dtype)
            actions = sample_actions(log_probs, uniform)
        return actions, values, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1), state

    def evaluate_actions(
        self, obs: Tensor | dict[str, Tensor], actions: Tensor, state: State, episode_starts: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Replay a rollout with gradients: observations ``[T, B, ...]``, ``actions [T, B, ...]`` from ``state``
        with resets ``episode_starts [T, B]``. Returns ``(values, log_probs, entropy)``, each ``[T, B]``.

        The whole sequence is one core call (full backpropagation through time).
        """
        T, B = episode_starts.shape
        latent_pi, latent_vf, _ = self._core(obs, state, episode_starts, need_state=False)
        values = self.value_net(latent_vf).squeeze(-1)
        if self.action_dist is not None:
            dist = self._distribution(latent_pi.reshape(T * B, -1))
            log_p = dist.log_prob(actions.reshape(T * B, *actions.shape[2:]))
            return values, log_p.reshape(T, B), dist.entropy().reshape(T, B)
        log_p = torch.log_softmax(self.action_net(latent_pi), -1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        return values, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1), entropy

    def predict_values(self, obs: Tensor | dict[str, Tensor], state: State, episode_starts: Tensor) -> Tensor:
        """Values ``[B]`` of one step of observations ``[B, ...]`` from ``state``."""
        _, latent_vf, _ = self._core(
            tree_map(lambda x: x.unsqueeze(0), obs), state, episode_starts.unsqueeze(0), need_state=False
        )
        return self.value_net(latent_vf.squeeze(0)).squeeze(-1)

    def _predict(self, observation: Tensor | dict[str, Tensor], deterministic: bool = False) -> Tensor:
        """Actions for observations ``[B, ...]`` as the first step of an episode (empty memory);
        :meth:`predict` with ``state`` acts within an episode."""
        n = len(next(iter(observation.values()))) if isinstance(observation, dict) else observation.shape[0]
        starts = torch.ones(n, dtype=torch.bool, device=self.device)
        return self(observation, self.initial_state(n), starts, deterministic)[0]

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: State | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, State]:
        """SB3's ``predict`` with memory: returns ``(actions, state)``, ``Box`` actions clipped to their bounds.

        ``state`` is what the previous call returned (None: empty memory); ``episode_start``
        (``[B]`` booleans, default all False) empties the memory of those rows first. The state is
        an opaque tensor or tuple of tensors on the policy's device.
        """
        self.set_training_mode(False)
        obs, vectorized = self.obs_to_tensor(observation)
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else obs.shape[0]
        if state is None:
            state = self.initial_state(n)
        starts = torch.zeros(n, dtype=torch.bool, device=self.device)
        if episode_start is not None:
            flags = np.asarray(episode_start, dtype=bool).reshape(-1)
            if flags.shape != (n,):
                raise ValueError(
                    f"episode_start must have one flag per observation ({n}), got shape {np.shape(episode_start)}"
                )
            starts = torch.as_tensor(flags, device=self.device)
        with torch.no_grad():
            actions, _, _, state = self(obs, state, starts, deterministic)
        actions = self.env_actions(actions)
        if not vectorized:
            actions = actions.squeeze(0)
        return actions, state


class FwmPolicy(RecurrentActorCriticPolicy):
    """The paper's FWM agent: ``FWMLSTM(obs_dim, 32, d_fwm=16, n_reads=3)`` + linear heads.

    Defaults follow the authors' meta-RL code (see the README's FWM section): residual output
    ``h_t + FWM(h_t, F_t)``, write bias +1, update scale ``1/d_fwm``, no tanh on the queries.
    With 17 inputs and 3 actions it has 10,933 parameters.

    Core options (``policy_kwargs``): ``output`` is what the heads see (:data:`FWM_OUTPUTS`: ``"sum"``,
    ``h_t + FWM(h_t, F_t)``; ``"reads"``, ``FWM(h_t, F_t)``; ``"both"``, ``[h_t; FWM(h_t, F_t)]``), ``read_tanh``
    puts eqs 5-6's tanh on the queries ``n^(0)`` and ``e^(i)``, ``zero_output`` starts ``W_o`` (eq. 8) at zero,
    ``beta_bias`` / ``update_scale`` are the cell's (:class:`~fwm_rl.memory.FastWeightMemory`). ``memory_lr_scale``
    trains the memory's own weights (eqs 1-2's and 5-8's projections, of the actor's and the critic's cores) at that
    factor times the learning rate, the LSTM and the heads at the learning rate itself (beyond the paper).
    """

    def __init__(self, *args: Any, memory_lr_scale: float = 1.0, **kwargs: Any) -> None:
        check_real("memory_lr_scale", memory_lr_scale, positive=True)
        self.memory_lr_scale = float(memory_lr_scale)  # (optimizer_groups reads it while the base class builds)
        super().__init__(*args, **kwargs)

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        """One group, or with ``memory_lr_scale`` two: the memories' weights in a group of their own at that scale."""
        if self.memory_lr_scale == 1.0:
            return super().optimizer_groups(lr)
        memory = {id(p) for m in self.core.modules() if isinstance(m, FastWeightMemory) for p in m.parameters()}
        rest = [p for p in self.parameters() if id(p) not in memory]
        own = [p for p in self.parameters() if id(p) in memory]
        scale = self.memory_lr_scale
        return [{"params": rest}, {"params": own, "lr": lr * scale, "lr_scale": scale}]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "memory_lr_scale": self.memory_lr_scale}

    def make_core(
        self,
        input_size: int,
        hidden_size: int = 32,
        d_fwm: int = 16,
        n_reads: int = 3,
        output: str = "sum",
        beta_bias: float = 1.0,
        update_scale: float | None = None,
        read_tanh: bool = False,
        impl: str = "auto",
        zero_output: bool = False,
    ) -> nn.Module:
        check_choice("output", output, FWM_OUTPUTS)
        return FWMLSTM(
            input_size,
            hidden_size,
            d_fwm=d_fwm,
            n_reads=n_reads,
            residual=output == "sum",
            cat_h=output == "both",  # [h_t; FWM(h_t, F_t)]: the heads weigh h_t and the reads apart (beyond the paper)
            beta_bias=beta_bias,
            update_scale=1.0 / d_fwm if update_scale is None else update_scale,
            tanh_first_query=read_tanh,  # the authors' meta-RL cell has no tanh on the
            tanh_read_keys=read_tanh,  # first query nor on the read keys
            impl=impl,  # "step": the reference recurrence instead of the chunked form (speed comparisons)
            zero_output=zero_output,  # W_o at zero: with output "sum" the agent starts as its LSTM (beyond the paper)
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
        if not torch.is_grad_enabled() and self.paper_heads and fused_step_applies(self, state):
            return fwm_step(self, obs, state, episode_starts, deterministic, generator)
        return super().forward(obs, state, episode_starts, deterministic, generator)

    def predict_values(self, obs: Tensor, state: State, episode_starts: Tensor) -> Tensor:
        if not torch.is_grad_enabled() and self.paper_heads and fused_step_applies(self, state):
            return fwm_step(self, obs, state, episode_starts, deterministic=True)[1]
        return super().predict_values(obs, state, episode_starts)

    def initial_state(self, n_envs: int) -> State:
        """The empty memory, its fast weights factored (:class:`fwm_rl.memory.FactoredState`): a
        rollout's one-step calls then cost ``O(steps x d)`` instead of ``O(d^3)`` passes over ``F``."""
        memory = (self.core.actor if isinstance(self.core, ActorCriticCores) else self.core).memory
        return self.core.initial_state(n_envs, device=self.device, factored=memory.impl != "step")


class LstmPolicy(RecurrentActorCriticPolicy):
    """The LSTM baseline: one ``nn.LSTM`` layer (default 512 units, the paper's smallest) + linear heads."""

    def make_core(self, input_size: int, hidden_size: int = 512) -> nn.Module:
        return LSTMCore(input_size, hidden_size)


class GruPolicy(RecurrentActorCriticPolicy):
    """A GRU baseline: one ``nn.GRU`` layer (default 128 units) + linear heads. POPGym (Morad et al., ICLR 2023)
    found the GRU the strongest of its memory models across its tasks."""

    def make_core(self, input_size: int, hidden_size: int = 128) -> nn.Module:
        return GRUCore(input_size, hidden_size)
