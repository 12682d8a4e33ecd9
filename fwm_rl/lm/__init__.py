"""Word-level language modelling with the Fast Weight Memory (paper section 4.3, appendix H).

``corpus``: PTB / WikiText-2 style readers and the generated bAbI default; ``model``: the AWD-LSTM
and the AWD-LSTM + FWM; ``trainer``: truncated-BPTT training, evaluation, temperature tuning;
``compare``: the Figure-6 per-token loss plot; ``cli``: the ``fwm-rl lm`` commands.
"""

from fwm_rl.lm.corpus import Corpus, Dictionary, babi_corpus, load_corpus, load_data
from fwm_rl.lm.model import AWDLanguageModel, LMConfig, LMState
from fwm_rl.lm.trainer import EvalResult, LMTrainer, TrainConfig, evaluate, load_model, tune_temperature

__all__ = [
    "AWDLanguageModel",
    "Corpus",
    "EvalResult",
    "LMConfig",
    "LMState",
    "LMTrainer",
    "TrainConfig",
    "Dictionary",
    "babi_corpus",
    "evaluate",
    "load_corpus",
    "load_data",
    "load_model",
    "tune_temperature",
]
