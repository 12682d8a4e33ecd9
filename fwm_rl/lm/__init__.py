"""Word-level language modelling with the Fast Weight Memory (paper section 4.3, appendix H).

``config``: the model and training configs and the presets; ``corpus``: PTB / WikiText-2 style readers and the
generated bAbI default; ``model``: the AWD-LSTM and the AWD-LSTM + FWM; ``trainer``: truncated-BPTT training,
evaluation, temperature tuning; ``compare``: the Figure-6 per-token loss plot; ``cli``: the ``fwm-rl lm`` commands.
"""

from fwm_rl.lm.config import MEMORIES, PRESETS, LMConfig, LMModelConfig
from fwm_rl.lm.corpus import Corpus, Dictionary, babi_corpus, load_corpus, load_data
from fwm_rl.lm.model import AWDLanguageModel, LMState
from fwm_rl.lm.trainer import LMEvalResult, LMTrainer, evaluate, load_model, tune_temperature

__all__ = [
    "AWDLanguageModel",
    "Corpus",
    "LMConfig",
    "LMEvalResult",
    "LMModelConfig",
    "LMState",
    "LMTrainer",
    "MEMORIES",
    "PRESETS",
    "Dictionary",
    "babi_corpus",
    "evaluate",
    "load_corpus",
    "load_data",
    "load_model",
    "tune_temperature",
]
