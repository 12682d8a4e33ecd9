"""Recurrent PPO on the rollout and replay machinery of :class:`~fwm_rl.agents.RecurrentA2C`.

sb3-contrib's ``RecurrentPPO`` is LSTM-only. :class:`RecurrentPPO` takes any recurrent core of
:mod:`fwm_rl.agents.policies` (the FWM, an LSTM or a GRU) with its memory state kept opaque, as the
A2C agent does. The rollout is A2C's (:meth:`RecurrentA2C.collect_rollouts`: memory state at the
rollout's start, episode-start flags, values, log-probabilities, GAE returns). The update is
PPO's (Schulman et al. 2017), in ``n_epochs`` passes over the rollout, each split into
``n_minibatches`` minibatches of whole environments: a minibatch replays its environments' full
sequences from their rows of the start state (the core's ``state_rows``), so gradients flow
through every step of the rollout as in A2C and no sequence is cut. Per minibatch::

    r_t     = exp(log pi(a_t | h_t) - log pi_old(a_t | h_t))
    L_pi    = -mean(min(r_t A_t, clip(r_t, 1 - clip_range, 1 + clip_range) A_t))
    L_v     = mean((R_t - V_t)^2), or with clip_range_vf the clipped value of SB3's PPO
    loss    = L_pi + vf_coef L_v - ent_coef H[pi(. | h_t)]

with advantages normalised per minibatch (``normalize_advantage``, SB3's default) and an epoch
stopped early once the approximate KL divergence passes ``1.5 target_kl`` (SB3's rule).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule
from typing_extensions import Self

from fwm_rl.agents.a2c import RecurrentA2C
from fwm_rl.agents.policies import RecurrentActorCriticPolicy, tree_map
from fwm_rl.engine import check_finite, gradient_step
from fwm_rl.engine.distributed import DistContext

__all__ = ["RecurrentPPO"]

NON_FINITE_HINT = "Lower the learning rate."


class RecurrentPPO(RecurrentA2C):
    """Proximal policy optimisation with a recurrent memory (FWM, LSTM or GRU).

    Args:
        policy: ``"FwmPolicy"``, ``"LstmPolicy"``, ``"GruPolicy"`` or a :class:`~fwm_rl.agents.policies.RecurrentActorCriticPolicy` subclass.
        env: a ``VecEnv`` (best: :class:`~fwm_rl.agents.vec_env.FWMGraphVecEnv`), a Gymnasium env or its id.
        learning_rate: Adam's learning rate (or a schedule).
        n_steps: steps per environment and rollout (the sequence each minibatch replays).
        n_epochs: passes over each rollout.
        n_minibatches: minibatches per pass, each a random set of whole environments (at most ``n_envs``).
        gamma, gae_lambda: discount and GAE's lambda.
        clip_range: the clipping of the probability ratio (or a schedule of the remaining progress).
        clip_range_vf: clip the value change to this range around the rollout's values; None: no clipping.
        normalize_advantage: normalise advantages per minibatch.
        ent_coef, vf_coef: weights of the entropy bonus and the value loss.
        max_grad_norm: gradient norm clip; None = no clipping.
        target_kl: stop an update's epochs once the approximate KL divergence passes ``1.5 target_kl``; None = never.
        stats_window_size, tensorboard_log, policy_kwargs, verbose, seed, device: as in :class:`RecurrentA2C`.

    It runs in one process (:class:`RecurrentA2C` also trains data-parallel).
    """

    policy_aliases: ClassVar[dict[str, type[RecurrentActorCriticPolicy]]] = RecurrentA2C.policy_aliases

    def __init__(
        self,
        policy: str | type[RecurrentActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        n_epochs: int = 4,
        n_minibatches: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        target_kl: float | None = None,
        stats_window_size: int | None = None,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        for name, value, ok in (
            ("n_epochs", n_epochs, isinstance(n_epochs, (int, np.integer)) and n_epochs >= 1),
            ("n_minibatches", n_minibatches, isinstance(n_minibatches, (int, np.integer)) and n_minibatches >= 1),
            ("clip_range", clip_range, callable(clip_range) or 0 < clip_range < np.inf),
            ("clip_range_vf", clip_range_vf, clip_range_vf is None or 0 < clip_range_vf < np.inf),
            ("target_kl", target_kl, target_kl is None or 0 < target_kl < np.inf),
        ):
            if not ok:
                raise ValueError(f"invalid {name}={value!r} for RecurrentPPO")
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            normalize_advantage=normalize_advantage,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.n_epochs, self.n_minibatches = int(n_epochs), int(n_minibatches)
        self.clip_range, self.clip_range_vf, self.target_kl = clip_range, clip_range_vf, target_kl
        if _init_setup_model:  # (load() restores n_minibatches and may predict with fewer environments)
            self._check_minibatches()
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self.clip_range = FloatSchedule(self.clip_range)

    def _check_minibatches(self) -> None:
        if self.env is not None and self.n_minibatches > self.n_envs:
            raise ValueError(
                f"n_minibatches={self.n_minibatches} is more than the {self.n_envs} environments a minibatch is made of; "
                f"lower n_minibatches or use more environments"
            )

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> Self:
        """Train for ``total_timesteps`` environment steps (``n_steps * n_envs`` per rollout)."""
        self._check_minibatches()
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def minibatch_loss(self, envs: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """PPO's loss on the whole sequences of environments ``envs`` of the current rollout,
        replayed with gradients from their rows of its start state; returns ``(loss, parts)``."""
        buffer = self.rollout_buffer
        state = self.policy.core.state_rows(buffer.initial_state, envs)
        values, log_prob, entropy = self.policy.evaluate_actions(
            tree_map(lambda x: x[:, envs], buffer.observations), buffer.actions[:, envs], state, buffer.episode_starts[:, envs]
        )
        advantages = buffer.advantages[:, envs]
        if self.normalize_advantage and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        log_ratio = log_prob - buffer.log_probs[:, envs]
        ratio = log_ratio.exp()
        policy_loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip_range, 1 + clip_range) * advantages).mean()
        old_values = buffer.values[:, envs]
        if self.clip_range_vf is not None:
            values = old_values + (values - old_values).clamp(-self.clip_range_vf, self.clip_range_vf)
        value_loss = F.mse_loss(values, buffer.returns[:, envs])
        entropy = entropy.mean()
        loss = policy_loss + self.vf_coef * value_loss - self.ent_coef * entropy
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()
            clip_fraction = ((ratio - 1).abs() > clip_range).float().mean()
        return loss, {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": approx_kl,
            "clip_fraction": clip_fraction,
        }

    def train(self) -> None:
        """``n_epochs`` passes of ``n_minibatches`` gradient steps over the rollout. A non-finite
        loss raises :class:`~fwm_rl.engine.NonFiniteLossError` before the gradient step it would
        take (the steps before it in this update are kept)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))
        sums: dict[str, float] = {}
        steps, stopped = 0, False
        for epoch in range(self.n_epochs):
            order = torch.randperm(self.n_envs, device=self.device)
            for envs in order.tensor_split(self.n_minibatches):
                self.policy.optimizer.zero_grad()
                loss, parts = self.minibatch_loss(envs, clip_range)
                check_finite(loss, self._n_updates, hint=NON_FINITE_HINT)  # (before the KL stop, which could hide it)
                if self.target_kl is not None and float(parts["approx_kl"]) > 1.5 * self.target_kl:
                    stopped = True
                    break
                gradient_step(
                    self.policy,
                    self.policy.optimizer,
                    loss,
                    DistContext(),
                    share=1.0,
                    totals={"loss": float(loss.detach())},
                    step=self._n_updates,
                    hint=NON_FINITE_HINT,
                    clip=self.max_grad_norm,
                )
                steps += 1
                for key, value in {"loss": loss, **parts}.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
            if stopped:
                break
        self._n_updates += epoch + 1  # SB3's PPO counts epochs (those run, with an early stop)
        self.last_losses = {key: value / max(steps, 1) for key, value in sums.items()}
        self.last_losses["gradient_steps"] = float(steps)
        self.last_losses["explained_variance"] = self._explained_variance()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        for key, value in self.last_losses.items():
            self.logger.record(f"train/{key}", value)
