"""Configuration of the language models (paper section 4.3, appendix H): the memories (:data:`MEMORIES`), the model
(:class:`LMModelConfig`), the training (:class:`LMConfig`) and the recipes of ``fwm-rl lm train --preset``
(:data:`PRESETS`).

Its own module so that the model, the trainer and the command line read one definition of each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

__all__ = ["MEMORIES", "PRESETS", "LMConfig", "LMModelConfig"]

#: The memories of the language model: the AWD-LSTM with the FWM on top, or the AWD-LSTM alone.
MEMORIES = ("fwm", "lstm")


@dataclass
class LMModelConfig(SavedConfig):
    """Sizes and regularisation of :class:`~fwm_rl.lm.model.AWDLanguageModel`.

    Defaults are the paper's PTB model (appendix H, table 4; the authors' ``main.py`` for the
    sizes): 400-dimensional tied embeddings, 3 LSTM layers of 1150 units, an FWM with
    ``d_fwm = 32`` and ``n_reads = 3``, dropouts 0.4 / 0.3 / 0.5 / 0.1 and weight drop 0.66
    (roughly 24M parameters on PTB's 10k words).
    """

    RENAMED = {"model": "memory", "d_embed": "embedding_size", "d_hidden": "hidden_size"}

    vocab_size: int
    """words in the vocabulary (the corpus sets it)"""
    memory: str = "lstm"
    """fwm: AWD-LSTM with the FWM on top; lstm: AWD-LSTM"""
    embedding_size: int = at_most(400, MAX_UNITS)
    """embedding size (and the last LSTM layer's size when tied)"""
    hidden_size: int = at_most(1150, MAX_UNITS)
    """LSTM units per layer"""
    n_layers: int = at_most(3, MAX_DEPTH)
    """LSTM layers"""
    tie_weights: bool = True
    """tie the input and output embeddings"""
    dropout: float = 0.4
    """locked dropout on the output"""
    dropout_h: float = 0.3
    """locked dropout between LSTM layers (PTB)"""
    dropout_i: float = 0.5
    """locked dropout on the embedded input (PTB)"""
    dropout_e: float = 0.1
    """embedding (word) dropout"""
    wdrop: float = 0.66
    """DropConnect on the hidden-to-hidden weights (PTB)"""
    d_fwm: int = at_most(32, MAX_D_FWM)
    """fwm: the FWM's key/value size d_fwm (F is d_fwm^3)"""
    n_reads: int = at_most(3, MAX_DEPTH)
    """fwm: the FWM's reads N_r"""

    def __post_init__(self) -> None:
        check_choice("memory", self.memory, MEMORIES)
        check_ints(self, ("vocab_size", "embedding_size", "hidden_size", "n_layers", "d_fwm", "n_reads"))
        for name in ("dropout", "dropout_h", "dropout_i", "dropout_e", "wdrop"):
            check_real(name, getattr(self, name), non_negative=True, below=1.0)

    @property
    def layer_sizes(self) -> list[int]:
        """Output size of every LSTM layer: ``hidden_size``, the last one ``embedding_size`` when tied."""
        last = self.embedding_size if self.tie_weights else self.hidden_size
        return [self.hidden_size] * (self.n_layers - 1) + [last]


@dataclass
class LMConfig(SavedConfig):
    """Optimisation settings; defaults are the paper's PTB run (appendix H, table 4, authors' ``main.py``)."""

    RENAMED = {"max_steps": "steps", "eval_interval": "eval_every", "log_interval": "log_every", "clip": "max_grad_norm"}
    RESUMABLE = ("epochs", "steps", "time_budget", "device")

    batch_size: int = at_most(20, MAX_STREAMS)
    """parallel text streams (paper: 20 on PTB, 80 on WT2)"""
    bptt: int = at_most(70, MAX_LENGTH)
    """mean truncated-BPTT length (AWD-LSTM's random lengths around it)"""
    lr: float = 1e-3
    """Adam learning rate"""
    weight_decay: float = 1.2e-6
    """L2 weight decay"""
    max_grad_norm: float = 0.25
    """gradient-norm clipping (0: off)"""
    epochs: int = 1000
    """budget: stop after this many epochs (or steps or time_budget, whichever comes first)"""
    steps: int | None = None
    """budget: stop after this many optimizer steps (None: no limit)"""
    time_budget: float | None = None
    """budget: stop after this many seconds of training (None: no limit)"""
    eval_every: int = 0
    """validate (and checkpoint) every this many steps; 0: at the end of every epoch (AWD-LSTM)"""
    eval_batch_size: int = at_most(10, MAX_STREAMS)
    """parallel streams of the periodic validation"""
    log_every: int = 50
    """steps between training-loss logs"""
    asgd_after: int | None = None
    """switch from Adam to averaged SGD after this many validations (paper appendix H: after 916 epochs on PTB)"""
    nonmono: int | None = None
    """or switch when validation is worse than the best of all but the last nonmono ones (AWD-LSTM)"""
    asgd_lr: float = 2.0
    """learning rate of averaged SGD (paper: 2.0 on PTB)"""
    ar_alpha: float = 2.0
    """activation regularisation"""
    tar_beta: float = 1.0
    """temporal activation regularisation"""
    tune_temperature: bool = True
    """tune the softmax temperature on validation at the end"""
    test_batch_size: int | None = at_most(1, MAX_STREAMS)
    """at the end, test best.pt (with its tuned temperature) reading each split as this many streams (1: every
    split one stream, the paper's table 5; None: no final test)"""
    seed: int = 141
    """random seed"""
    device: str = "auto"
    """auto (CUDA when present), cpu or cuda[:N]"""
    tensorboard: bool = True
    """TensorBoard events beside metrics.csv"""
    amp: str = "none"
    """mixed precision of the training steps: bf16 = bfloat16 autocast for the LSTMs and the softmax, the FWM in
    float32 (validation and tests run in float32)"""

    def __post_init__(self) -> None:
        check_ints(self, ("batch_size", "bptt", "epochs", "eval_batch_size", "log_every"))
        check_ints(self, ("steps", "asgd_after", "nonmono", "test_batch_size"), optional=True)
        check_int("eval_every", self.eval_every, 0, why=" (0 = every epoch)")
        check_real("time_budget", self.time_budget, positive=True, optional=True)
        for name in ("lr", "asgd_lr"):
            check_real(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "max_grad_norm", "ar_alpha", "tar_beta"):
            check_real(name, getattr(self, name), non_negative=True)
        check_choice("amp", self.amp, AMP_MODES)


def _runs(**fields: Any) -> dict[str, dict[str, Any]]:
    """A preset's runs: one per memory (named by it), each with the same ``fields`` of both configs."""
    return {memory: {"memory": memory, **fields} for memory in MEMORIES}


#: The sizes of the paper's model on both data sets (the authors' ``main.py``): 400-d tied embeddings,
#: three LSTM layers of 1150 units, the FWM on the last one with d_fwm = 32 and 3 reads.
_PAPER_SIZES = {"embedding_size": 400, "hidden_size": 1150, "n_layers": 3, "d_fwm": 32, "n_reads": 3, "tie_weights": True}
#: What both of the paper's runs share (appendix H): Adam at 1e-3 then averaged SGD, validation every epoch, the
#: softmax temperature tuned on validation, the final test reading each split as one stream (table 5).
_PAPER_TRAINING = {"bptt": 70, "lr": 1e-3, "nonmono": None, "eval_every": 0, "tune_temperature": True, "test_batch_size": 1}

#: The recipes of ``fwm-rl lm train --preset``: the paper's two (appendix H, table 4) and a small one. Each has a run
#: per memory (``--memory`` picks one); options given on the command line override it, ``--print-config`` shows the
#: result.
PRESETS: dict[str, Preset] = {
    # Table 4, PTB row, and the text of appendix H: 1000 epochs, Adam then averaged SGD after epoch 916
    # (asgd_after counts validations, one per epoch), softmax temperature tuned on validation, seed 141
    # (table 5's first PTB run). The final test reads the split at batch size 1 (table 5).
    "ptb": Preset(
        "the paper's PTB run (appendix H, table 4): 1000 epochs, ASGD after epoch 916, temperature tuned, tested at batch size 1",
        _runs(
            **_PAPER_SIZES,
            dropout=0.4,
            dropout_e=0.1,
            dropout_h=0.3,
            dropout_i=0.5,
            wdrop=0.66,
            **_PAPER_TRAINING,
            batch_size=20,
            asgd_lr=2.0,
            epochs=1000,
            asgd_after=916,
            seed=141,
        ),
    ),
    # Table 4, WT2 row: 1600 epochs, ASGD after epoch 1372, seed 1881 (table 5's first WT2 run).
    "wt2": Preset(
        "the paper's WikiText-2 run (appendix H, table 4): 1600 epochs, ASGD after epoch 1372, temperature tuned, tested at batch size 1",
        _runs(
            **_PAPER_SIZES,
            dropout=0.4,
            dropout_e=0.1,
            dropout_h=0.25,
            dropout_i=0.7,
            wdrop=0.61,
            **_PAPER_TRAINING,
            batch_size=80,
            asgd_lr=0.5,
            epochs=1600,
            asgd_after=1372,
            seed=1881,
        ),
    ),
    # The default without --data: a small model on the generated bAbI text that trains in minutes on a CPU.
    "small": Preset(
        "a small model for the generated default corpus, not the paper's: 3 epochs, about 1.5 minutes on a 2-core CPU "
        "(test perplexity about 2 on this very predictable text)",
        _runs(
            embedding_size=128,
            hidden_size=256,
            n_layers=2,
            d_fwm=16,
            n_reads=3,
            tie_weights=True,
            dropout=0.2,
            dropout_e=0.05,
            dropout_h=0.1,
            dropout_i=0.2,
            wdrop=0.2,
            batch_size=20,
            bptt=70,
            lr=3e-3,
            epochs=3,
            eval_every=0,
            tune_temperature=True,
            test_batch_size=1,
        ),
    ),
}
