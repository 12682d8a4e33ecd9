"""Recurrent A2C and PPO on any Gymnasium environment (``fwm-rl train --env ID``): the run's environments and its task
for the one trainer (:class:`EnvTask`, :func:`~fwm_rl.agents.training.train_run`); its configuration is
:class:`~fwm_rl.agents.config.EnvTrainConfig`.

A run trains :class:`~fwm_rl.agents.RecurrentA2C` or :class:`~fwm_rl.agents.RecurrentPPO` with an FWM, LSTM or GRU core
on any registered environment whose spaces stable-baselines3 takes (observations: ``Box`` of any shape, ``Discrete``,
``MultiDiscrete``, ``MultiBinary``, ``Dict``, and ``Tuple`` mapped to a ``Dict`` by :func:`~fwm_rl.envs.sb3_compatible`;
actions: ``Discrete``, ``Box``, ``MultiDiscrete``, ``MultiBinary``), for comparing memories on other tasks: ``n_envs``
copies of the env (SB3's ``make_vec_env``, with ``Monitor``), updates on rollouts of ``n_steps`` steps, gradients
through each rollout from the memory state it started with (:meth:`~fwm_rl.agents.RecurrentA2C.update`). At the first
update that reaches each multiple of ``eval_every`` environment steps the run logs the mean return of the training
episodes that ended since the last log and of ``eval_episodes`` fresh evaluation episodes (``metrics.csv``,
TensorBoard) and writes ``checkpoint.pt``; at the end ``results.json`` holds an evaluation over
``final_eval_episodes`` episodes (deterministic actions unless ``stochastic_eval``, as the RL Zoo reports) and the
run's MMER, POPGym's metric: the maximum over the logs of the mean return of the training episodes. The ids of the
graph task other than the training sets run on the native batched env for fresh graphs (``FWMGraph-v0``), on copies
of the single env for a fixed set (``FWMGraphTest-v0``, ...). It runs in one process (not under ``torchrun``).

Defaults: ``gamma`` 0.99, ``vf_coef`` 0.5 and ``max_grad_norm`` 0.5 as in stable-baselines3's
A2C, with its PPO's GAE (``gae_lambda`` 0.95) and a small entropy bonus (``ent_coef`` 0.01), Adam,
and the paper's FWM sizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.preprocessing import (
    check_for_nested_spaces,
    get_obs_shape,
)
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from fwm_rl.agents.a2c import RecurrentA2C
from fwm_rl.agents.config import MEMORIES, PPO_OPTIONS, EnvTrainConfig, graph_env_kwargs
from fwm_rl.agents.policies import ACTION_SPACES, RecurrentActorCriticPolicy
from fwm_rl.agents.ppo import RecurrentPPO
from fwm_rl.agents.vec_env import FWMGraphVecEnv
from fwm_rl.engine import recorded_results
from fwm_rl.engine.distributed import DistContext
from fwm_rl.envs import sb3_compatible

__all__ = [
    "EnvRunSummary",
    "EnvTask",
    "check_env_id",
    "evaluate_env",
    "make_env",
    "make_env_model",
    "make_eval_env",
    "normalized",
]


# ------------------------------------------------------------------------ envs
def check_env_id(env_id: str) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces of ``env_id`` as a run sees them (those of :func:`make_env`'s ``VecEnv``), or
    a clear error why a run cannot train on it."""
    try:
        env = make_env(env_id, 1)
    except gym.error.Error as exc:
        raise ValueError(
            f"unknown environment {env_id!r} ({exc}); give a registered id, or 'module:Id' to import the module that registers it"
        ) from None
    except ImportError as exc:  # 'module:Id' whose module is missing (or fails to import)
        module, _, name = env_id.rpartition(":")
        raise ValueError(
            f"environment {env_id!r}: the module {module!r} could not be imported ({exc.__cause__ or exc}); it "
            f"must be installed and importable (pip install it, or put its folder on PYTHONPATH) and register "
            f"{name!r}"
        ) from None
    except ValueError as exc:  # (spaces no wrapper maps to SB3's)
        raise ValueError(f"{env_id}: {exc}") from None
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    if not isinstance(action_space, ACTION_SPACES):
        raise ValueError(
            f"{env_id} has actions {action_space}; a run takes Discrete, Box, MultiDiscrete or MultiBinary actions"
        )
    try:
        check_for_nested_spaces(obs_space)
        get_obs_shape(obs_space)
    except (ValueError, NotImplementedError) as exc:
        raise ValueError(f"{env_id} has observations {obs_space}, which stable-baselines3 cannot take ({exc})") from None
    return obs_space, action_space


def _wrapped(env: gym.Env) -> gym.Env:
    """``env`` as a run steps it: a ``Dict`` of ``Box`` flattened into one ``Box`` (normalised as one), a ``Tuple``
    mapped to a ``Dict`` (:func:`~fwm_rl.envs.sb3_compatible`)."""
    space = env.observation_space
    if isinstance(space, gym.spaces.Dict) and all(isinstance(s, gym.spaces.Box) for s in space.spaces.values()):
        return gym.wrappers.FlattenObservation(env)
    return sb3_compatible(env)


def make_env(env_id: str, n_envs: int, seed: int | None = None) -> VecEnv:
    """``n_envs`` copies of ``env_id`` as an SB3 ``VecEnv`` (``Monitor`` on each; a ``Dict`` of ``Box`` flattened, a
    ``Tuple`` mapped to a ``Dict``, images transposed to channels first). A graph-task id on fresh graphs gives its native batched env
    (:class:`~fwm_rl.agents.FWMGraphVecEnv`); one of a fixed graph set (``FWMGraphTest-v0``...) gives
    copies that each draw a graph of the whole set at every reset (the native env would give copy
    ``i`` graph ``i`` only)."""
    fixed = graph_env_kwargs(env_id)
    if fixed is not None and fixed.get("split", "random") == "random":
        return FWMGraphVecEnv.make(n_envs, split="random", seed=seed, **{k: v for k, v in fixed.items() if k != "split"})
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=_wrapped)
    return BaseAlgorithm._wrap_env(env, verbose=0, monitor_wrapper=False)  # (images channels first, as SB3 feeds its policies)


def normalized(
    env: VecEnv,
    obs_rms: RunningMeanStd | None,
    training: bool,
    norm_obs: bool = True,
    norm_reward: bool = False,
    gamma: float = 0.99,
    ret_rms: RunningMeanStd | None = None,
) -> VecNormalize:
    """``env`` with its observations normalised: by ``obs_rms`` if given (the same object, so an evaluation env
    follows its training env's statistics), updated only when ``training``; with ``norm_reward`` its rewards scaled by
    the running deviation of the ``gamma``-discounted return (``ret_rms``: a resumed run's statistics)."""
    venv = VecNormalize(env, training=training, norm_obs=norm_obs, norm_reward=norm_reward, gamma=gamma)
    if obs_rms is not None:
        venv.obs_rms = obs_rms
    if ret_rms is not None:
        venv.ret_rms = ret_rms
    return venv


def _rms_state(rms: RunningMeanStd) -> dict[str, Any]:
    """The observation statistics as a checkpoint holds them: float64 tensors and a float."""
    return {
        "mean": torch.from_numpy(np.array(rms.mean, dtype=np.float64)),
        "var": torch.from_numpy(np.array(rms.var, dtype=np.float64)),
        "count": float(rms.count),
    }


def _rms_from(state: dict[str, Any] | None) -> RunningMeanStd | None:
    if state is None:
        return None
    mean, var = (torch.as_tensor(state[k]).cpu().numpy().astype(np.float64) for k in ("mean", "var"))
    rms = RunningMeanStd(shape=mean.shape)
    rms.mean, rms.var, rms.count = mean, var, float(state["count"])
    return rms


def make_eval_env(ckpt: dict, n_envs: int, seed: int | None = None) -> VecEnv:
    """``n_envs`` copies of a checkpointed ``--env`` run's environment for evaluation, its
    observations normalised by the checkpoint's frozen statistics where the run normalised them."""
    env = make_env(ckpt["configs"]["train"]["env_id"], n_envs, seed=seed)
    rms = ckpt["task"]["obs_rms"]
    return normalized(env, _rms_from(rms), training=False) if rms is not None else env


def _obs_rms(env: VecEnv) -> RunningMeanStd | None:
    """The observation statistics of a training env (None where it does not normalise its observations)."""
    return env.obs_rms if isinstance(env, VecNormalize) and env.norm_obs else None


def evaluate_env(
    policy: RecurrentActorCriticPolicy, env: VecEnv, n_episodes: int, deterministic: bool = True
) -> tuple[float, float]:
    """Mean return and its standard error over ``n_episodes`` episodes of ``env`` (reset first; each
    copy's memory emptied at its episodes' starts), with the policy's most likely actions (``deterministic``, the RL
    Zoo's way) or sampled ones. Copy ``i`` plays ``(n_episodes + i) // num_envs``
    of them, as SB3's ``evaluate_policy`` does, so short episodes are not favoured."""
    n = env.num_envs
    targets = np.array([(n_episodes + i) // n for i in range(n)])
    counts, totals, returns = np.zeros(n, dtype=int), np.zeros(n), []
    obs = policy.observation_tensor(env.reset())
    state = policy.initial_state(n)
    starts = torch.ones(n, dtype=torch.bool, device=policy.device)
    was_training = policy.training
    policy.set_training_mode(False)
    with torch.no_grad():
        while (counts < targets).any():
            actions, _, _, state = policy(obs, state, starts, deterministic=deterministic)
            obs_np, rewards, dones, _ = env.step(policy.env_actions(actions))
            totals += rewards
            counted = dones & (counts < targets)
            returns += totals[counted].tolist()
            counts += counted
            totals[dones] = 0.0
            obs = policy.observation_tensor(obs_np)
            starts = torch.as_tensor(dones, device=policy.device)
    policy.set_training_mode(was_training)
    sem = float(np.std(returns, ddof=1) / math.sqrt(len(returns))) if len(returns) > 1 else float("nan")
    return float(np.mean(returns)), sem


def make_env_model(cfg: EnvTrainConfig, env: VecEnv, device: torch.device) -> RecurrentA2C:
    """The run's algorithm (a :class:`RecurrentA2C`, or its subclass :class:`RecurrentPPO` with ``algo="ppo"``) on
    ``env``, logging to nowhere (the trainer's :class:`~fwm_rl.engine.RunLogger` keeps the metrics)."""
    ppo = {name: getattr(cfg, name) for name in PPO_OPTIONS if name != "clip_range_schedule"} if cfg.algo == "ppo" else {}
    if ppo:
        ppo["clip_range"] = cfg.schedule("clip_range")
    model = (RecurrentPPO if cfg.algo == "ppo" else RecurrentA2C)(
        MEMORIES[cfg.memory],
        env,
        **ppo,
        learning_rate=cfg.schedule("lr"),
        n_steps=cfg.n_steps,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        max_grad_norm=cfg.max_grad_norm,
        normalize_advantage=cfg.normalize_advantage,
        policy_kwargs=cfg.policy_kwargs,
        stats_window_size=100,
        seed=cfg.seed,
        device=device,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # metrics go to RunLogger
    return model


# ------------------------------------------------------------------------ runs
@dataclass
class EnvRunSummary:
    """Outcome of one ``--env`` run (also ``results.json`` in its folder)."""

    label: str
    env_id: str
    timesteps: int
    train_return: float  # mean return of the training episodes that ended in the last logging interval
    eval_return: float  # final evaluation: mean return over final_eval_episodes episodes
    eval_sem: float
    eval_deterministic: bool  # the evaluation's actions: the most likely ones, or sampled
    mmer: float  # POPGym's metric: the maximum over the logs of the mean return of the training episodes
    eval_episodes: int
    train_seconds: float
    steps_per_second: float
    stopped_by_time_budget: bool
    record: dict[str, Any]


class EnvTask:
    """An ``--env`` run as the trainer's :class:`~fwm_rl.agents.training.TrainTask`: a step is one update (a rollout of
    ``n_steps`` steps in each of the ``n_envs`` copies, episodes continuing across updates), counted in environment
    steps. Its evaluation hook logs the mean return of the training episodes that ended since the last log (the MMER
    keeps their best) and of ``eval_episodes`` evaluation episodes; the final evaluation plays ``final_eval_episodes``.
    A resumed run starts new episodes, from seeds of (seed, steps done), and continues its observation statistics."""

    kind, unit, speed_name, env_steps_per_unit, data_parallel = "a2c-env", "environment steps", "steps_per_second", 1, False

    def __init__(self, cfg: EnvTrainConfig):
        self.cfg = cfg
        self.env: VecEnv | None = None
        self.eval_env: VecEnv | None = None
        self._train_return = float("nan")
        self.mmer = float("nan")

    @property
    def total(self) -> int:
        return self.cfg.planned_timesteps

    def check(self) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "an --env run trains in one process; start it without torchrun (only the graph task trains data-parallel)"
            )
        self.spaces()
        _ = self.total  # (refuses a budget below one rollout)

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return check_env_id(self.cfg.env_id)

    def build(self, dist: DistContext, ckpt: dict | None) -> RecurrentA2C:
        cfg = self.cfg
        done = 0 if ckpt is None else ckpt["step"]
        env_seed = int(np.random.SeedSequence([cfg.seed, done]).generate_state(1)[0])
        env = make_env(cfg.env_id, cfg.n_envs, seed=env_seed)
        eval_env = make_env(cfg.env_id, min(cfg.n_envs, cfg.final_eval_episodes), seed=env_seed + 1)
        norm_obs = cfg.normalizes_obs(env.observation_space)  # (the spaces check_env_id reads: no third env made)
        if norm_obs or cfg.norm_reward:  # the evaluation follows the training statistics, frozen
            stored = ckpt["task"] if ckpt is not None else {}  # a resumed run continues its statistics
            env = normalized(
                env,
                _rms_from(stored.get("obs_rms")),
                training=True,
                norm_obs=norm_obs,
                norm_reward=cfg.norm_reward,
                gamma=cfg.gamma,
                ret_rms=_rms_from(stored.get("ret_rms")),
            )
            if norm_obs:
                eval_env = normalized(eval_env, env.obs_rms, training=False)
        self.env, self.eval_env = env, eval_env
        self.mmer = ckpt["task"].get("mmer", float("nan")) if ckpt is not None else float("nan")
        model = make_env_model(cfg, env, dist.device)
        model.num_timesteps = done  # the episodes start anew (update() resets the environments first)
        return model

    def advance(self, model: RecurrentA2C, step: int) -> int:
        model.update(self.cfg.planned_timesteps)  # (schedules read at the run's progress, as learn() would)
        return model.num_timesteps

    def end_interval(self, model: RecurrentA2C, dist: DistContext) -> None:
        """The mean return of the training episodes that ended since the last log (the last stats_window_size of them)."""
        buffer = model.ep_info_buffer
        self._train_return = float(np.mean([e["r"] for e in buffer])) if buffer else float("nan")
        buffer.clear()
        self.mmer = max((r for r in (self.mmer, self._train_return) if not math.isnan(r)), default=float("nan"))

    def evaluate(self, model: RecurrentA2C, step: int) -> dict[str, float]:
        eval_return, _ = evaluate_env(
            model.policy, self.eval_env, self.cfg.eval_episodes, deterministic=not self.cfg.stochastic_eval
        )
        return {"train/return": self._train_return, "eval/return": eval_return}

    def state(self) -> dict[str, Any]:
        obs_rms, ret_rms = _obs_rms(self.env), self.env.ret_rms if self.cfg.norm_reward else None
        return {
            "train_return": self._train_return,
            "mmer": self.mmer,
            "obs_rms": None if obs_rms is None else _rms_state(obs_rms),
            "ret_rms": None if ret_rms is None else _rms_state(ret_rms),
        }

    def finish(self, model: RecurrentA2C, ckpt: dict, stopped: bool, record: dict[str, Any]) -> EnvRunSummary:
        cfg = self.cfg
        mean, sem = evaluate_env(model.policy, self.eval_env, cfg.final_eval_episodes, deterministic=not cfg.stochastic_eval)
        return EnvRunSummary(
            label=cfg.label,
            env_id=cfg.env_id,
            timesteps=ckpt["step"],
            train_return=ckpt["task"]["train_return"],
            eval_return=mean,
            eval_sem=sem,
            eval_deterministic=not cfg.stochastic_eval,
            mmer=ckpt["task"].get("mmer", float("nan")),
            eval_episodes=cfg.final_eval_episodes,
            train_seconds=ckpt["train_seconds"],
            steps_per_second=ckpt["step"] / max(ckpt["train_seconds"], 1e-9),
            stopped_by_time_budget=stopped,
            record=record,
        )

    def recorded(self, run_dir: Path, step: int) -> EnvRunSummary | None:
        results = recorded_results(run_dir, step, "timesteps")
        try:
            return None if results is None else EnvRunSummary(**results)
        except TypeError:
            return None  # one an older fwm-rl wrote: the run's end is done again

    def close(self) -> None:
        for env in (self.env, self.eval_env):
            if env is not None:
                env.close()
