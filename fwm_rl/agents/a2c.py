"""Recurrent A2C on stable-baselines3 (paper section 4.2, appendix I).

stable-baselines3's ``A2C`` is feed-forward and sb3-contrib's recurrent support
is LSTM-only; :class:`RecurrentA2C` is an ``OnPolicyAlgorithm`` for any
recurrent core whose state is opaque to it (see :mod:`fwm_rl.agents.policies`).

A rollout runs the policy one step at a time without gradients and stores the
memory state at its start together with the episode-start flags. The update
replays the rollout with gradients in one sequence call from that state, so the
gradient flows through whole episodes (the authors backpropagate through the
30-step episode); the replayed log-probabilities and values are those seen
during the rollout.

The loss is A2C's, as in the authors' code (per step and environment, averaged
over the batch)::

    loss = -A_t log pi(a_t | h_t) + vf_coef (R_t - V_t)^2 - ent_coef H[pi(. | h_t)]

with ``A_t = R_t - V_t`` (``V_t`` detached in the policy term). With
``gae_lambda=1`` (the default) ``R_t`` is the Monte-Carlo discounted return
within the episode (``gamma`` 0.9 in the paper), bootstrapped only where a
rollout stops inside an episode; ``gae_lambda < 1`` gives GAE(lambda). The
defaults are the paper's: ``vf_coef`` 0.1, ``ent_coef`` 0.03, Adam (lr 1e-3,
eps 1e-4), no gradient clipping (``max_grad_norm=None``), no advantage
normalisation.

``loss="released_code"`` is the loss the authors' released loop computes (``metaRL/train_agent.py``), with which
every curve of their Figure 5 was trained: their value head keeps its output at shape ``[B, 1]`` and the return has
shape ``[B]``, so ``R - V`` broadcasts to a ``[B, B]`` matrix ``R_j - V_i``. What that computes, per step ``t`` over
the batch of ``B`` agents (:meth:`RecurrentA2C.loss`)::

    policy:  -mean_j log pi(a_tj | h_tj) (R_tj - mean_i V_ti)           the baseline is the batch mean of the values
    value:    mean_i (V_ti - mean_j R_tj)^2 + Var_j(R_tj)               the critic learns the batch-mean return

(the variance does not depend on the weights; it is kept so that the loss, not only its gradient, is theirs).
Together with the environment's ``semantics="released_code"`` it is "as the authors ran it".

With the native graph env (:class:`~fwm_rl.agents.vec_env.FWMGraphVecEnv`)
rollouts use its tensor interface, so on a GPU they never leave the device.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor
from typing_extensions import Self

from fwm_rl.agents.policies import (
    ACTION_SPACES,
    FwmPolicy,
    GruPolicy,
    LstmPolicy,
    RecurrentActorCriticPolicy,
    State,
    detach_state,
)
from fwm_rl.agents.vec_env import FWMGraphVecEnv
from fwm_rl.engine import apply_gradients, reduce_gradients
from fwm_rl.engine.distributed import DistContext, all_reduce_sum, all_reduce_tensor

__all__ = ["A2C_LOSSES", "NonFiniteEnvError", "RecurrentA2C", "RecurrentRolloutBuffer"]

#: The A2C losses: ``paper``, each agent's own value as its baseline and target (the paper's text, the textbook
#: loss); ``released_code``, the batch means of the authors' released loop (see the module's docstring).
A2C_LOSSES = ("paper", "released_code")

SelfRecurrentA2C = TypeVar("SelfRecurrentA2C", bound="RecurrentA2C")


class NonFiniteEnvError(ValueError):
    """An environment returned a NaN or infinite observation or reward (the environment's fault, not the training's)."""


def _check_env_output(values: Tensor | dict[str, Tensor], what: str, steps_done: int) -> None:
    """Raise :class:`NonFiniteEnvError` naming the copy and the value if ``values`` (``[n_envs, ...]``, or a ``Dict``
    observation's tensors, the ``what`` an environment returned after ``steps_done`` environment steps) holds a NaN or
    an infinity."""
    if isinstance(values, dict):
        for value in values.values():
            _check_env_output(value, what, steps_done)
        return
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        copy = int(bad.reshape(len(values), -1).any(1).nonzero()[0])
        raise NonFiniteEnvError(
            f"the environment returned a non-finite {what} ({values[bad][0].item()}) in copy {copy} after "
            f"{steps_done} environment steps: a fault of the environment, not of the training settings; "
            "it must return finite observations and rewards"
        )


class RecurrentRolloutBuffer:
    """One rollout of ``n_steps`` x ``n_envs`` as time-major tensors on ``device``, plus the memory
    state the rollout started from.

    Fields (``[T, B]`` unless noted): ``observations [T, B, *obs_shape]`` (SB3's shape of the observation space; a
    ``Dict`` of such tensors for a ``Dict`` space), ``actions`` (``Discrete``: ``[T, B]`` integers; else
    ``[T, B, *action_shape]``), ``rewards``, ``episode_starts`` (the memory is emptied before that step),
    ``values``, ``log_probs``, and after :meth:`compute_returns_and_advantage` ``returns`` and ``advantages``;
    ``initial_state``.
    """

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device,
        gamma: float,
        gae_lambda: float,
    ) -> None:
        self.n_steps, self.n_envs, self.gamma, self.gae_lambda = n_steps, n_envs, gamma, gae_lambda
        T, B = n_steps, n_envs
        if isinstance(observation_space, spaces.Dict):
            self.observations: Tensor | dict[str, Tensor] = {
                key: torch.zeros(T, B, *get_obs_shape(space), device=device) for key, space in observation_space.spaces.items()
            }
        else:
            self.observations = torch.zeros(T, B, *get_obs_shape(observation_space), device=device)
        if isinstance(action_space, spaces.Discrete):
            self.actions = torch.zeros(T, B, dtype=torch.long, device=device)
        else:
            self.actions = torch.zeros(T, B, get_action_dim(action_space), device=device)
        self.rewards = torch.zeros(T, B, device=device)
        self.episode_starts = torch.zeros(T, B, dtype=torch.bool, device=device)
        self.values = torch.zeros(T, B, device=device)
        self.log_probs = torch.zeros(T, B, device=device)
        self.returns = torch.zeros(T, B, device=device)
        self.advantages = torch.zeros(T, B, device=device)
        self.initial_state: State = None
        self.pos = 0

    def reset(self, initial_state: State) -> None:
        """Start a new rollout from (a detached copy of) ``initial_state``."""
        self.initial_state = detach_state(initial_state)
        self.pos = 0

    @property
    def full(self) -> bool:
        return self.pos == self.n_steps

    def add(self, obs: Tensor, action: Tensor, reward: Tensor, episode_start: Tensor, value: Tensor, log_prob: Tensor) -> None:
        if self.full:
            raise RuntimeError(f"the rollout buffer already holds {self.n_steps} steps; call reset() first")
        t = self.pos
        if isinstance(obs, dict):
            for key, part in obs.items():
                self.observations[key][t] = part
        else:
            self.observations[t] = obs
        self.actions[t] = action
        self.rewards[t] = reward
        self.episode_starts[t] = episode_start
        self.values[t] = value
        self.log_probs[t] = log_prob
        self.pos += 1

    def compute_returns_and_advantage(self, last_values: Tensor, dones: Tensor) -> None:
        """Returns and advantages; ``last_values``/``dones`` belong to the step after the rollout.

        ``gae_lambda == 1``: ``R_t = r_t + gamma R_{t+1}`` within an episode (nothing after its end,
        ``last_values`` where the rollout stops inside one), ``A_t = R_t - V_t``.
        Else GAE: ``A_t = sum_k (gamma lambda)^k delta_{t+k}``, ``R_t = A_t + V_t``.
        """
        if not self.full:
            raise RuntimeError(f"the rollout holds {self.pos} of {self.n_steps} steps")
        gamma, lam = self.gamma, self.gae_lambda
        next_value, running = last_values.detach(), None
        for t in reversed(range(self.n_steps)):
            nonterminal = (~(dones if t == self.n_steps - 1 else self.episode_starts[t + 1])).to(self.rewards.dtype)
            if lam == 1.0:
                running = self.rewards[t] + gamma * nonterminal * (next_value if running is None else running)
                self.returns[t] = running
            else:
                delta = self.rewards[t] + gamma * nonterminal * next_value - self.values[t]
                running = delta if running is None else delta + gamma * lam * nonterminal * running
                self.advantages[t] = running
                next_value = self.values[t]
        if lam == 1.0:
            self.advantages.copy_(self.returns - self.values)
        else:
            self.returns.copy_(self.advantages + self.values)


def _batch_of_one(obs: Any) -> Any:
    """One environment's observation (an array, or a ``Dict``'s arrays) as a batch of one."""
    return {key: np.asarray(value)[None] for key, value in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]


class _NoCallback(BaseCallback):
    """The callback of :meth:`RecurrentA2C.update`: nothing to do."""

    def _on_step(self) -> bool:
        return True


class RecurrentA2C(OnPolicyAlgorithm):
    """Advantage actor-critic with a recurrent memory (FWM or LSTM), trained by backpropagation
    through whole rollouts.

    Args:
        policy: ``"FwmPolicy"``, ``"LstmPolicy"``, ``"GruPolicy"`` or a :class:`~fwm_rl.agents.policies.RecurrentActorCriticPolicy` subclass.
        env: a ``VecEnv`` (best: :class:`~fwm_rl.agents.vec_env.FWMGraphVecEnv`), a Gymnasium env or its id.
        learning_rate: Adam's learning rate (or a schedule), paper 1e-3.
        n_steps: steps per environment and update; default 30, one whole episode of the graph task.
        gamma: discount, paper 0.9.
        gae_lambda: 1 = Monte-Carlo returns within the episode (paper); < 1 = GAE(lambda).
        ent_coef: entropy bonus coefficient, paper 0.03.
        vf_coef: value loss coefficient, paper 0.1.
        max_grad_norm: gradient norm clip; None (paper) = no clipping.
        normalize_advantage: normalise advantages over the batch (off in the paper).
        loss: ``paper`` or ``released_code`` (:data:`A2C_LOSSES`; the latter needs Monte-Carlo returns,
            ``gae_lambda=1``, and no advantage normalisation, as the authors' loop).
        stats_window_size: episodes averaged for ``rollout/ep_rew_mean`` (None: ``n_envs``).
        dist: the process group of a data-parallel run (:func:`fwm_rl.engine.distributed.init_distributed`);
            each process steps its own share of the environments and the gradients are combined
            as if one process had stepped them all (see :meth:`compute_gradients`). None: one process.
        tensorboard_log, policy_kwargs, verbose, seed, device: as in stable-baselines3.
    """

    policy_aliases: ClassVar[dict[str, type[RecurrentActorCriticPolicy]]] = {
        "FwmPolicy": FwmPolicy,
        "LstmPolicy": LstmPolicy,
        "GruPolicy": GruPolicy,
    }
    policy: RecurrentActorCriticPolicy
    rollout_buffer: RecurrentRolloutBuffer  # type: ignore[assignment]

    def __init__(
        self,
        policy: str | type[RecurrentActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 30,
        gamma: float = 0.9,
        gae_lambda: float = 1.0,
        ent_coef: float = 0.03,
        vf_coef: float = 0.1,
        max_grad_norm: float | None = None,
        normalize_advantage: bool = False,
        loss: str = "paper",
        stats_window_size: int | None = None,
        dist: DistContext | None = None,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        for name, value, ok in (
            ("n_steps", n_steps, isinstance(n_steps, (int, np.integer)) and n_steps >= 1),
            ("gamma", gamma, 0.0 <= gamma <= 1.0),
            ("gae_lambda", gae_lambda, 0.0 <= gae_lambda <= 1.0),
            ("ent_coef", ent_coef, np.isfinite(ent_coef)),
            ("vf_coef", vf_coef, np.isfinite(vf_coef) and vf_coef >= 0),
            ("max_grad_norm", max_grad_norm, max_grad_norm is None or max_grad_norm > 0),
        ):
            if not ok:
                raise ValueError(f"invalid {name}={value!r} for RecurrentA2C")
        if loss not in A2C_LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {A2C_LOSSES}")
        if loss == "released_code" and (gae_lambda != 1.0 or normalize_advantage):
            raise ValueError(
                "loss='released_code' is the authors' Monte-Carlo loss: it needs gae_lambda=1 and no "
                f"normalize_advantage (got gae_lambda={gae_lambda}, normalize_advantage={normalize_advantage})"
            )
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=int(n_steps),
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,  # type: ignore[arg-type]
            use_sde=False,
            sde_sample_freq=-1,
            stats_window_size=100 if stats_window_size is None else stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=ACTION_SPACES,
        )
        if stats_window_size is None and self.env is not None:  # (``load`` restores the saved one)
            self._stats_window_size = self.n_envs
        self.normalize_advantage = normalize_advantage
        #: The loss (:data:`A2C_LOSSES`).
        self.loss_rule = loss
        self.dist = DistContext() if dist is None else dist
        self._last_state: State = None
        #: Losses of the last update (``loss``, ``policy_loss``, ``value_loss``, ``entropy``, ``explained_variance``).
        self.last_losses: dict[str, float] = {}
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs)
        self.policy = self.policy.to(self.device)
        self.rollout_buffer = RecurrentRolloutBuffer(
            self.n_steps, self.n_envs, self.observation_space, self.action_space, self.device, self.gamma, self.gae_lambda
        )
        self._last_state = None
        self._episode_return = torch.zeros(self.n_envs, device=self.device)
        self._episode_length = torch.zeros(self.n_envs, dtype=torch.long, device=self.device)

    def _excluded_save_params(self) -> list[str]:
        # Where the rollouts stand (last observation, memory state, running episode totals) is not
        # saved: a loaded model starts new episodes when it learns again.
        return [
            *super()._excluded_save_params(),
            "_last_obs",
            "_last_episode_starts",
            "_last_state",
            "_episode_return",
            "_episode_length",
            "last_losses",
            "dist",
        ]

    def _update_learning_rate(self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer) -> None:
        """SB3's schedule step, keeping each parameter group's ``lr_scale`` (a policy's
        :meth:`~fwm_rl.agents.policies.RecurrentActorCriticPolicy.optimizer_groups`) as the learning rate moves."""
        lr = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

    # ---------------------------------------------------------------- rollout
    def _as_tensor(self, x: Any, dtype: torch.dtype) -> Tensor:
        return torch.as_tensor(x, device=self.device).to(dtype)

    def collect_rollouts(  # type: ignore[override]
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RecurrentRolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Run ``n_rollout_steps`` steps in every environment without gradients and fill the buffer.

        With :class:`~fwm_rl.agents.vec_env.FWMGraphVecEnv` everything stays on the device and
        episode statistics reach ``ep_info_buffer`` once per rollout (one copy to the host).
        """
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n = env.num_envs
        tensor_env = isinstance(env, FWMGraphVecEnv)
        obs = self._as_tensor(self._last_obs, torch.float32) if tensor_env else self.policy.observation_tensor(self._last_obs)
        starts = self._as_tensor(self._last_episode_starts, torch.bool)
        if not tensor_env:  # (the graph env's are finite by construction)
            _check_env_output(obs, "observation", self.num_timesteps)
        # Where every row starts an episode the carried memory is discarded anyway: start empty.
        fresh = self._last_state is None or bool(starts.all())
        state = self.policy.initial_state(n) if fresh else self._last_state
        rollout_buffer.reset(state)
        # Per step: return and length of the episodes that ended there (length 0 elsewhere).
        ended_return = torch.zeros(n_rollout_steps, n, device=self.device)
        ended_length = torch.zeros(n_rollout_steps, n, dtype=torch.long, device=self.device)
        callback.on_rollout_start()
        for step in range(n_rollout_steps):
            with torch.no_grad():
                actions, values, log_probs, state = self.policy(obs, state, starts)
            if tensor_env:
                new_obs, rewards, dones = env.step_tensors(actions)
            else:
                # (a NaN or infinity the env returns is named below, in one line; the running statistics of a
                # VecNormalize wrapper would first warn of it from inside numpy)
                with np.errstate(invalid="ignore", over="ignore"):
                    new_obs_np, rewards_np, dones_np, infos = env.step(self.policy.env_actions(actions))
                new_obs, dones = self.policy.observation_tensor(new_obs_np), self._as_tensor(dones_np, torch.bool)
                rewards = self._as_tensor(rewards_np, torch.float32)
                _check_env_output(new_obs, "observation", self.num_timesteps)
                _check_env_output(rewards, "reward", self.num_timesteps)
                self._update_info_buffer(infos, dones_np)
                rewards = self._bootstrap_truncated(rewards, infos, dones_np, new_obs, state)
            self.num_timesteps += n
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            rollout_buffer.add(obs, actions, rewards, starts, values, log_probs)
            self._episode_return += rewards
            self._episode_length += 1
            ended_return[step] = self._episode_return * dones
            ended_length[step] = self._episode_length * dones
            self._episode_return *= ~dones
            self._episode_length *= ~dones
            obs, starts = new_obs, dones
        with torch.no_grad():
            last_values = self.policy.predict_values(obs, state, starts)
        rollout_buffer.compute_returns_and_advantage(last_values, starts)
        self._last_obs, self._last_episode_starts, self._last_state = obs, starts, detach_state(state)
        if tensor_env:  # other envs report their episodes through Monitor infos (above)
            ended = ended_length.flatten() > 0
            returns, lengths = ended_return.flatten()[ended].tolist(), ended_length.flatten()[ended].tolist()
            self.ep_info_buffer.extend({"r": r, "l": n} for r, n in zip(returns, lengths))
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_truncated(
        self, rewards: Tensor, infos: list[dict], dones: np.ndarray, new_obs: Tensor, state: State
    ) -> Tensor:
        """Add ``gamma V(terminal obs)`` to the reward of episodes cut by a time limit (SB3's
        convention), the value coming from the memory the episode ended with."""
        truncated = [
            i
            for i in np.flatnonzero(dones)
            if infos[i].get("TimeLimit.truncated", False) and "terminal_observation" in infos[i]
        ]
        if not truncated:
            return rewards
        terminal = {key: value.clone() for key, value in new_obs.items()} if isinstance(new_obs, dict) else new_obs.clone()
        for i in truncated:
            last = self.policy.observation_tensor(_batch_of_one(infos[i]["terminal_observation"]))
            if isinstance(terminal, dict):
                for key in terminal:
                    terminal[key][i] = last[key][0]
            else:
                terminal[i] = last[0]
        no_reset = torch.zeros(len(rewards), dtype=torch.bool, device=self.device)
        with torch.no_grad():
            values = self.policy.predict_values(terminal, state, no_reset)
        rows = torch.as_tensor(truncated, device=self.device)
        return rewards.index_add(0, rows, self.gamma * values[rows])

    # ----------------------------------------------------------------- update
    def _global_means(self, sums: dict[str, Tensor | float], count: float) -> tuple[dict[str, float], float]:
        """Means over every process's items and the number of those items: ``sums`` are this
        process's sums over its ``count`` items (one process: plain means). One collective call."""
        totals = all_reduce_sum({**sums, "_count": count}, self.dist)
        n = totals.pop("_count")
        return {k: v / n for k, v in totals.items()}, n

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The A2C loss of the current rollout, replayed with gradients from its start state;
        returns ``(loss, parts)`` with ``parts`` = policy_loss, value_loss, entropy.

        In a data-parallel run it is this process's share (a mean over its environments), and
        advantage normalisation uses the mean and deviation over all processes' environments, as do the batch
        means of ``loss="released_code"``.
        """
        buffer = self.rollout_buffer
        values, log_prob, entropy = self.policy.evaluate_actions(
            buffer.observations, buffer.actions, buffer.initial_state, buffer.episode_starts
        )
        advantages = buffer.advantages
        if self.normalize_advantage:  # mean and (unbiased) deviation over every process's steps
            s = all_reduce_sum({"a": advantages.sum(), "a2": advantages.pow(2).sum(), "n": advantages.numel()}, self.dist)
            mean = s["a"] / s["n"]
            std = (max(s["a2"] - s["n"] * mean**2, 0.0) / max(s["n"] - 1, 1)) ** 0.5
            advantages = (advantages - mean) / (std + 1e-8)
        if self.loss_rule == "released_code":
            policy_loss, value_loss = self._released_code_terms(values, log_prob)
        else:
            policy_loss = -(advantages * log_prob).mean()
            value_loss = F.mse_loss(values, buffer.returns)
        entropy = entropy.mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
        return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def _released_code_terms(self, values: Tensor, log_prob: Tensor) -> tuple[Tensor, Tensor]:
        """The policy and value terms of ``loss="released_code"`` (the module's docstring): per step, the batch
        means over every process's agents (summed in float64) of the values and of the returns and their
        variance; ``values`` and ``log_prob`` are ``[T, B]`` with gradients."""
        returns = self.rollout_buffer.returns.double()
        sums = torch.stack([values.detach().double().sum(1), returns.sum(1), returns.pow(2).sum(1)])
        sums = all_reduce_tensor(sums, self.dist)
        value_mean, return_mean, return_square_mean = sums / all_reduce_sum({"n": values.shape[1]}, self.dist)["n"]
        return_variance = (return_square_mean - return_mean**2).clamp(min=0.0)
        policy_loss = -((self.rollout_buffer.returns - value_mean.to(values.dtype)[:, None]) * log_prob).mean()
        value_loss = (values - return_mean.to(values.dtype)[:, None]).pow(2).mean() + return_variance.mean().to(values.dtype)
        return policy_loss, value_loss

    def compute_gradients(self) -> dict[str, float]:
        """Backpropagate the loss of the current rollout into the policy's ``.grad`` and return
        the losses (means over all processes' environments).

        In a data-parallel run each process's gradient is weighted by its share of the
        environments and summed over processes, which equals the gradient of one process holding
        every environment. A non-finite loss on any process raises
        :class:`~fwm_rl.engine.NonFiniteLossError` on all of them, before the weights change
        (the engine's :func:`~fwm_rl.engine.reduce_gradients`; :meth:`train` then steps).
        """
        self.policy.optimizer.zero_grad()
        loss, parts = self.loss()
        share = self.n_envs / all_reduce_sum({"n": self.n_envs}, self.dist)["n"]  # of every process's environments
        return reduce_gradients(
            self.policy,
            loss,
            self.dist,
            share=share,
            totals={k: float(v.detach()) * share for k, v in {"loss": loss, **parts}.items()},
            step=self._n_updates,
            hint="Lower the learning rate or clip gradients (max_grad_norm).",
        )

    def _explained_variance(self) -> float:
        """``1 - Var(R - V) / Var(R)`` over the rollout's steps (of all processes), as SB3 logs it."""
        returns, residual = self.rollout_buffer.returns, self.rollout_buffer.returns - self.rollout_buffer.values
        m, _ = self._global_means(
            {"r": returns.sum(), "r2": returns.pow(2).sum(), "d": residual.sum(), "d2": residual.pow(2).sum()}, returns.numel()
        )
        var_returns = m["r2"] - m["r"] ** 2
        return float("nan") if var_returns <= 0 else 1.0 - (m["d2"] - m["d"] ** 2) / var_returns

    def train(self) -> None:
        """One gradient step on the whole rollout. A non-finite loss raises
        :class:`~fwm_rl.engine.NonFiniteLossError` before the weights change."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        self.last_losses = self.compute_gradients()
        apply_gradients(self.policy, self.policy.optimizer, self.max_grad_norm)
        self._n_updates += 1
        self.last_losses["explained_variance"] = self._explained_variance()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, value in self.last_losses.items():
            self.logger.record(f"train/{key}", value)

    # ------------------------------------------------- one update at a time (for trainers)
    def start_episodes(self, seed: int | None = None) -> None:
        """Reset every environment (seeded with ``seed`` when given) and empty the memory, so that the next
        rollout starts new episodes. :meth:`learn` instead continues the episodes where they stand."""
        if seed is not None:
            self.env.seed(seed)
        self._last_obs, self._last_episode_starts, self._last_state = (
            self.env.reset(),
            np.ones(self.env.num_envs, dtype=bool),
            None,
        )

    def set_progress(self, n_updates: int) -> None:
        """Say that ``n_updates`` updates were done before (a resumed run): the update and step counters continue from there."""
        self._n_updates, self.num_timesteps = n_updates, n_updates * self.n_steps * self.n_envs

    def update(self, total_timesteps: int | None = None) -> float:
        """One update, as one iteration of :meth:`learn`: a rollout of ``n_steps`` steps in every environment, then
        :meth:`train` on it (A2C: one gradient step; :class:`~fwm_rl.agents.RecurrentPPO`: its epochs of
        minibatches). Episodes continue from the last rollout (or start where :meth:`start_episodes` reset them).
        With ``total_timesteps`` (the run's length) the schedules (learning rate, PPO's clip range) are read where
        :meth:`learn` would read them after this rollout; without, where they stand. Returns the mean return of the
        last ``stats_window_size`` episodes (those of this rollout when every environment ends one episode per
        rollout), NaN before any ended."""
        if self._last_obs is None:
            self.start_episodes()
        if not hasattr(self, "_logger"):  # (learn() sets these up; update() alone records nowhere)
            self.set_logger(Logger(folder=None, output_formats=[]))
        if self.ep_info_buffer is None:
            self.ep_info_buffer, self.ep_success_buffer = (
                deque(maxlen=self._stats_window_size),
                deque(maxlen=self._stats_window_size),
            )
        callback = _NoCallback()
        callback.init_callback(self)
        self.collect_rollouts(self.env, callback, self.rollout_buffer, self.n_steps)
        if total_timesteps is not None:
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
        self.train()
        return float(np.mean([info["r"] for info in self.ep_info_buffer])) if self.ep_info_buffer else float("nan")

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentA2C",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Self:
        """Train for ``total_timesteps`` environment steps (``n_steps * n_envs`` per update)."""
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
