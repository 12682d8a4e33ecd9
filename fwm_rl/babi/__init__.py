"""catbAbI: the bAbI tasks as one endless stream of stories (paper section 4.1, appendices D and F).

``reader``: the official bAbI v1.2 files (archive, tasks folder or variant folder); ``generator``: the
built-in bAbI-style story generator (the default data; not the official data); ``catbabi``:
preprocessing and vocabulary; ``batching``: training/evaluation streams and truncated-BPTT segments;
``config``: the model and training configs and the presets; ``models``: the FWM model and the LSTM baseline;
``trainer``: QA/LM-mode training and evaluation; ``explain``: the Figure-3 read heatmap; ``pretrained``: the
shipped models; ``answer``: answers to a story of your own; ``cli``: the ``fwm-rl babi`` commands.
"""

from fwm_rl.babi.batching import Segment, TrainStream, build_rows, eval_segments
from fwm_rl.babi.catbabi import CatbAbI, DataSpec, EncodedSplit, Vocabulary, load_catbabi, split_stats, story_tokens
from fwm_rl.babi.config import MEMORIES, MODES, PRESETS, CatbAbIConfig, CatbAbIModelConfig, preset_configs
from fwm_rl.babi.models import CatbAbIModel, StackedLSTM
from fwm_rl.babi.pretrained import export_pretrained, load_model, load_pretrained
from fwm_rl.babi.reader import BabiFormatError, BabiSource, Question, Sentence, Story, open_babi, parse_babi_text
from fwm_rl.babi.trainer import CatbAbIEvalResult, CatbAbITrainer, evaluate

__all__ = [
    "MEMORIES",
    "MODES",
    "PRESETS",
    "BabiFormatError",
    "BabiSource",
    "CatbAbI",
    "CatbAbIConfig",
    "CatbAbIEvalResult",
    "CatbAbIModel",
    "CatbAbIModelConfig",
    "CatbAbITrainer",
    "DataSpec",
    "EncodedSplit",
    "Question",
    "Segment",
    "Sentence",
    "StackedLSTM",
    "Story",
    "TrainStream",
    "Vocabulary",
    "build_rows",
    "eval_segments",
    "evaluate",
    "export_pretrained",
    "load_catbabi",
    "load_model",
    "load_pretrained",
    "open_babi",
    "parse_babi_text",
    "preset_configs",
    "split_stats",
    "story_tokens",
]
