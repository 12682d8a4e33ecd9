"""Named recipes of ``fwm-rl lm train --preset``: the paper's two (appendix H, table 4) and a small one.

A preset fixes fields of :class:`~fwm_rl.lm.model.LMConfig` and :class:`~fwm_rl.lm.trainer.TrainConfig`;
options given on the command line override them, and ``--print-config`` shows the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRESETS", "LMPreset"]

#: The sizes of the paper's model on both data sets (the authors' ``main.py``): 400-d tied embeddings,
#: three LSTM layers of 1150 units, the FWM on the last one with d_fwm = 32 and 3 reads.
_PAPER_SIZES = {"d_embed": 400, "d_hidden": 1150, "n_layers": 3, "d_fwm": 32, "n_reads": 3, "tie_weights": True}


@dataclass(frozen=True)
class LMPreset:
    description: str
    model: dict[str, Any] = field(default_factory=dict)  # LMConfig fields
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields


PRESETS: dict[str, LMPreset] = {
    # Table 4, PTB row, and the text of appendix H: 1000 epochs, Adam then averaged SGD after epoch 916
    # (asgd_after counts validations, one per epoch), softmax temperature tuned on validation, seed 141
    # (table 5's first PTB run). The final test reads the split at batch size 1 (table 5).
    "ptb": LMPreset(
        "the paper's PTB run (appendix H, table 4): 1000 epochs, ASGD after epoch 916, temperature tuned, tested at batch size 1",
        model={**_PAPER_SIZES, "dropout": 0.4, "dropout_e": 0.1, "dropout_h": 0.3, "dropout_i": 0.5, "wdrop": 0.66},
        train={
            "batch_size": 20,
            "bptt": 70,
            "lr": 1e-3,
            "asgd_lr": 2.0,
            "epochs": 1000,
            "asgd_after": 916,
            "nonmono": None,
            "eval_every": 0,
            "tune_temperature": True,
            "seed": 141,
            "test_batch_size": 1,
        },
    ),
    # Table 4, WT2 row: 1600 epochs, ASGD after epoch 1372, seed 1881 (table 5's first WT2 run).
    "wt2": LMPreset(
        "the paper's WikiText-2 run (appendix H, table 4): 1600 epochs, ASGD after epoch 1372, temperature tuned, tested at batch size 1",
        model={**_PAPER_SIZES, "dropout": 0.4, "dropout_e": 0.1, "dropout_h": 0.25, "dropout_i": 0.7, "wdrop": 0.61},
        train={
            "batch_size": 80,
            "bptt": 70,
            "lr": 1e-3,
            "asgd_lr": 0.5,
            "epochs": 1600,
            "asgd_after": 1372,
            "nonmono": None,
            "eval_every": 0,
            "tune_temperature": True,
            "seed": 1881,
            "test_batch_size": 1,
        },
    ),
    # The default without --data: a small model on the generated bAbI text that trains in minutes on a CPU.
    "small": LMPreset(
        "a small model for the generated default corpus, not the paper's: 3 epochs, about 1.5 minutes on a 2-core CPU "
        "(test perplexity about 2 on this very predictable text)",
        model={
            "d_embed": 128,
            "d_hidden": 256,
            "n_layers": 2,
            "d_fwm": 16,
            "n_reads": 3,
            "tie_weights": True,
            "dropout": 0.2,
            "dropout_e": 0.05,
            "dropout_h": 0.1,
            "dropout_i": 0.2,
            "wdrop": 0.2,
        },
        train={
            "batch_size": 20,
            "bptt": 70,
            "lr": 3e-3,
            "epochs": 3,
            "eval_every": 0,
            "tune_temperature": True,
            "test_batch_size": 1,
        },
    ),
}
