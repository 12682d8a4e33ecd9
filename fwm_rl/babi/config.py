"""catbAbI's configuration: the model (:class:`CatbAbIModelConfig`), the training run (:class:`CatbAbIConfig`) and the
presets (:data:`PRESETS`, one run per memory; :func:`preset_configs` builds a run's two configs).

Its own module so that everything that reads a run's configs (the trainer, the shipped models' records, the
command line) imports it without importing the trainer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fwm_rl.babi.batching import BPTT
from fwm_rl.checks import (
    MAX_D_FWM,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_STREAMS,
    MAX_UNITS,
    at_most,
    check_choice,
    check_int,
    check_ints,
    check_real,
)
from fwm_rl.engine import AMP_MODES, Preset, SavedConfig

__all__ = ["MEMORIES", "MODES", "PRESETS", "CatbAbIConfig", "CatbAbIModelConfig", "preset_configs"]

MEMORIES = ("fwm", "lstm")
MODES = ("qa", "lm")


@dataclass(frozen=True)
class CatbAbIModelConfig(SavedConfig):
    """Sizes of a catbAbI model; the defaults are the paper's FWM."""

    RENAMED = {"model": "memory", "layers": "n_layers"}

    memory: str = "fwm"
    """fwm: LSTM + FWM (paper); lstm: the LSTM baseline"""
    embedding_size: int = at_most(256, MAX_UNITS)
    """word embedding size"""
    hidden_size: int = at_most(256, MAX_UNITS)
    """LSTM units"""
    d_fwm: int = at_most(32, MAX_D_FWM)
    """fwm: the FWM's key/value size d_fwm (F is d_fwm^3)"""
    n_reads: int = at_most(3, MAX_DEPTH)
    """fwm: the FWM's chained reads N_r"""
    residual: bool = True
    """fwm: the output h_t + FWM(h_t, F_t) (paper); lstm: residual connections between layers"""
    n_layers: int = at_most(1, MAX_DEPTH)
    """lstm: stacked LSTM layers"""
    beta_bias: float = 1.0
    """fwm: the authors' "bias to writing", added to the write strength beta before its sigmoid"""
    update_scale: float | None = None
    """fwm: scale of the write (None: 1 / d_fwm, the authors' code)"""

    def __post_init__(self):
        check_choice("memory", self.memory, MEMORIES)
        check_ints(self, ("embedding_size", "hidden_size", "d_fwm", "n_reads", "n_layers"))


@dataclass(frozen=True)
class CatbAbIConfig(SavedConfig):
    """Optimisation and evaluation settings (defaults: the authors' released catbAbI scripts)."""

    RENAMED = {"seq_len": "bptt"}
    RESUMABLE = ("steps", "time_budget", "device", "tensorboard")

    mode: str = "qa"
    """qa: the loss on the answers only; lm: on every token (paper section 4.1)"""
    batch_size: int = at_most(32, MAX_STREAMS)
    """parallel story streams per step (the authors' scripts)"""
    bptt: int = at_most(BPTT, MAX_LENGTH)
    """truncated BPTT length"""
    lr: float = 1e-3
    """Adam learning rate"""
    steps: int = 50_000
    """total training steps (the authors' scripts: 50,000)"""
    eval_every: int = 250
    """steps between validations and checkpoints"""
    eval_batch_size: int = at_most(32, MAX_STREAMS)
    """parallel streams of the periodic validation and of the final weights' test"""
    eval_segments: int | None = None
    """periodic validation on the first N segments only (None: all)"""
    log_every: int = 25
    """steps between training-loss logs"""
    seed: int = 0
    """seed of the weights and the story order"""
    test_batch_size: int = at_most(1, MAX_STREAMS)
    """streams of the final test of the best-validation checkpoint (1: the paper's appendix D, "Evaluation on
    test is done with a batch-size of one"); the final weights are tested at eval_batch_size too"""
    time_budget: float | None = None
    """stop after this many seconds of training steps (validation and checkpoints not counted), as if the steps
    were done; like steps, a resumed run may be given a new one, and the seconds already trained count"""
    amp: str = "none"
    """mixed precision of the training steps: bf16 = bfloat16 autocast for the LSTM and the softmax, the FWM in
    float32 (evaluations always run in float32)"""
    device: str = "auto"
    """auto (CUDA when present; under torchrun this process's GPU), cpu or cuda[:N]"""
    tensorboard: bool = True
    """TensorBoard events beside metrics.csv"""

    def __post_init__(self):
        check_choice("mode", self.mode, MODES)
        check_choice("amp", self.amp, AMP_MODES)
        check_ints(self, ("batch_size", "bptt", "steps", "eval_every", "eval_batch_size", "log_every", "test_batch_size"))
        check_int("eval_segments", self.eval_segments, optional=True)
        check_real("lr", self.lr, positive=True)
        check_real("time_budget", self.time_budget, positive=True, optional=True)


#: Preset name -> its runs, one per memory (``--memory`` picks one), each the fields it sets of
#: :class:`CatbAbIModelConfig` and :class:`CatbAbIConfig`. ``paper``: the paper's sizes (appendix F.1, the FWM with
#: the residual output of section 3); ``released``: the authors' released catbAbI scripts (``fwm_catbabi_ra.sh`` for
#: QA mode, ``fwm_catbabi_lm.sh`` for LM mode: the paper's sizes, ``residual=False``; the configs' defaults carry
#: their batch 32, Adam lr 1e-3 and 50k steps); ``small``: a short CPU run on the generated stories.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "the paper's sizes (FWM: embedding 256, LSTM 256, d_fwm 32, 3 reads, the residual output of section 3; "
        "LSTM: 4 x 512), 50,000 steps",
        {
            "fwm": {"memory": "fwm", "embedding_size": 256, "hidden_size": 256, "d_fwm": 32, "n_reads": 3},
            "lstm": {"memory": "lstm", "embedding_size": 256, "hidden_size": 512, "n_layers": 4},
        },
    ),
    "released": Preset(
        "the authors' released scripts (with --mode qa fwm_catbabi_ra.sh, with --mode lm fwm_catbabi_lm.sh): the paper's "
        "sizes without the residual output, 50,000 steps; the LSTM is the paper's (no released script)",
        {
            "fwm": {"memory": "fwm", "embedding_size": 256, "hidden_size": 256, "d_fwm": 32, "n_reads": 3, "residual": False},
            "lstm": {"memory": "lstm", "embedding_size": 256, "hidden_size": 512, "n_layers": 4},
        },
    ),
    "small": Preset(
        "a short CPU run (FWM: embedding 64, LSTM 64, d_fwm 16, 3 reads; LSTM: 2 x 128), 3,000 steps",
        {
            "fwm": {"memory": "fwm", "embedding_size": 64, "hidden_size": 64, "d_fwm": 16, "n_reads": 3, "steps": 3_000},
            "lstm": {"memory": "lstm", "embedding_size": 64, "hidden_size": 128, "n_layers": 2, "steps": 3_000},
        },
    ),
}


def preset_configs(preset: str, memory: str, **overrides: Any) -> tuple[CatbAbIModelConfig, CatbAbIConfig]:
    """The model and training configs of run ``memory`` of ``preset`` (:data:`PRESETS`), with ``overrides``: fields of
    either config (``None`` values ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    check_choice("memory", memory, MEMORIES)
    values = {**PRESETS[preset].run(memory), **{k: v for k, v in overrides.items() if v is not None}}
    model = {f.name for f in dataclasses.fields(CatbAbIModelConfig)}
    return (
        CatbAbIModelConfig(**{k: v for k, v in values.items() if k in model}),
        CatbAbIConfig(**{k: v for k, v in values.items() if k not in model}),
    )
