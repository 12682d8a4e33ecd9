"""catbAbI preprocessing (paper section 4.1 and appendix D).

Every bAbI story becomes one sequence of words: lower-cased, line indices and supporting facts dropped,
a sentence becomes its words and a ``.`` token, a question its words, a ``?`` token and the answer as a
single token (``n,w`` stays one token). Stories are later concatenated into an endless stream with an
end-of-story token ``<eos>`` before every story (:mod:`fwm_rl.babi.batching`). Every token carries
the task id of its story and whether it is an answer; neither is shown to the model.

Data comes from the official files (:func:`fwm_rl.babi.reader.open_babi`) or, without a path, from the
built-in generator :mod:`fwm_rl.babi.generator` (not the official data; see its documentation).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fwm_rl.babi.reader import SPLITS, VARIANTS, Question, Sentence, Story, open_babi, parse_babi_text

__all__ = [
    "END_OF_STORY",
    "PAD",
    "QUESTION_MARK",
    "CatbAbI",
    "DataSpec",
    "EncodedSplit",
    "Vocabulary",
    "encode_split",
    "generated_stories",
    "line_words",
    "load_catbabi",
    "split_stats",
    "story_tokens",
]

PAD = "<pad>"
END_OF_STORY = "<eos>"
QUESTION_MARK = "?"
PERIOD = "."
#: Stories per task and split of the generated default data (train, valid, test).
DEFAULT_GENERATED = (1000, 100, 100)


def line_words(line: Sentence | Question) -> list[str]:
    """The catbAbI words of one story line without a question's answer: ``mary went to the bathroom .`` or
    ``where is mary ?``."""
    if isinstance(line, Question):
        return line.text.lower().rstrip("?").split() + [QUESTION_MARK]
    return line.text.lower().rstrip(".").split() + [PERIOD]


def story_tokens(story: Story) -> tuple[list[str], list[bool]]:
    """The catbAbI words of one story and, for each, whether it is an answer (the word after each ``?``)."""
    words: list[str] = []
    answer: list[bool] = []
    for line in story.lines:
        body = line_words(line)
        words += body
        answer += [False] * len(body)
        if isinstance(line, Question):
            words.append(line.answer.lower())
            answer.append(True)
    return words, answer


class Vocabulary:
    """Word <-> index; index 0 is ``<pad>``, 1 is ``<eos>``, then the data's words in sorted order."""

    def __init__(self, words: Sequence[str]):
        self.words = [PAD, END_OF_STORY] + sorted(set(words) - {PAD, END_OF_STORY})
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad, self.eos, self.question_mark = self.index[PAD], self.index[END_OF_STORY], self.index.get(QUESTION_MARK, -1)

    @classmethod
    def from_stories(cls, stories: Iterable[Story]) -> Vocabulary:
        return cls([w for s in stories for w in story_tokens(s)[0]])

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def encode(self, words: Sequence[str], where: str = "") -> np.ndarray:
        try:
            return np.fromiter((self.index[w] for w in words), dtype=np.int32, count=len(words))
        except KeyError as exc:
            raise ValueError(
                f"word {exc.args[0]!r}{' in ' + where if where else ''} is not in the vocabulary of {len(self)} words "
                "(was the model trained on other data?)"
            ) from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]


@dataclass
class EncodedSplit:
    """All stories of a split as one flat array: story ``i`` is ``tokens[offsets[i]:offsets[i+1]]``."""

    tokens: np.ndarray  # int32 [N] word ids (no end-of-story tokens)
    answer: np.ndarray  # bool [N] the word is an answer
    offsets: np.ndarray  # int64 [S + 1]
    tasks: np.ndarray  # int16 [S] task id of each story

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def encode_split(stories: Sequence[Story], vocab: Vocabulary) -> EncodedSplit:
    """Encode ``stories`` with ``vocab``."""
    tokens, answer, lengths = [], [], []
    for story in stories:
        words, is_answer = story_tokens(story)
        tokens.append(vocab.encode(words, where=story.source))
        answer.append(np.asarray(is_answer, dtype=bool))
        lengths.append(len(words))
    offsets = np.zeros(len(stories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return EncodedSplit(
        tokens=np.concatenate(tokens) if tokens else np.zeros(0, np.int32),
        answer=np.concatenate(answer) if answer else np.zeros(0, bool),
        offsets=offsets,
        tasks=np.asarray([s.task for s in stories], dtype=np.int16),
    )


def split_stats(stories: Sequence[Story]) -> dict[str, int]:
    """Stories, questions and tokens (each story's words plus its end-of-story token)."""
    return {
        "stories": len(stories),
        "questions": sum(s.n_questions for s in stories),
        "tokens": sum(len(story_tokens(s)[0]) + 1 for s in stories),
    }


def generated_stories(
    stories_per_task: Sequence[int] = DEFAULT_GENERATED,
    seed: int = 0,
    tasks: Iterable[int] = range(1, 21),
    splits: Sequence[str] = SPLITS,
) -> dict[str, list[Story]]:
    """Stories from the built-in generator, ``stories_per_task[i]`` per task for split ``SPLITS[i]``.

    Splits use disjoint generator seeds (``3 * seed + split index``).
    """
    from fwm_rl.babi.generator import generate_task_text

    if len(stories_per_task) != len(SPLITS) or any(int(n) < 1 for n in stories_per_task):
        raise ValueError(f"stories per task must be three positive counts (train, valid, test), got {stories_per_task!r}")
    out = {}
    for split in splits:
        i = SPLITS.index(split)
        out[split] = [
            story
            for task in tasks
            for story in parse_babi_text(
                generate_task_text(task, int(stories_per_task[i]), 3 * seed + i), task, f"<generated task {task} {split}>"
            )
        ]
    return out


@dataclass(frozen=True)
class DataSpec:
    """Where the stories come from: an official bAbI path, or the generator (``path=None``)."""

    path: str | None = None
    variant: str | None = None
    allow_missing: bool = False
    generated: tuple[int, int, int] = DEFAULT_GENERATED
    seed: int = 0
    tasks: tuple[int, ...] | None = None  # None: every task found
    fill_missing_from: str | None = None  # another variant that supplies the files this one lacks

    def describe(self) -> str:
        if self.path is None:
            t = self.tasks or tuple(range(1, 21))
            return (
                f"generated bAbI-style stories (fwm_rl.babi.generator, not the official data): "
                f"{self.generated[0]}/{self.generated[1]}/{self.generated[2]} stories per task for train/valid/test, "
                f"tasks {','.join(map(str, t))}, seed {self.seed}"
            )
        text = f"official bAbI v1.2 from {self.path}" + (f" (variant {self.variant})" if self.variant else "")
        return text + (f", missing files filled from {self.fill_missing_from}" if self.fill_missing_from else "")

    def to_dict(self) -> dict:
        return asdict(self)

    def read(self, splits: Sequence[str] = SPLITS) -> dict[str, list[Story]]:
        """The stories of ``splits``."""
        if self.path is None:
            return generated_stories(self.generated, self.seed, self.tasks or range(1, 21), splits)
        source = open_babi(self.path, self.variant)
        if self.fill_missing_from is not None:
            root = Path(self.path)
            # a variant folder given directly: its sibling; else the same archive or tasks folder
            other_path = (
                source.root.parent / self.fill_missing_from if source.archive is None and root.name in VARIANTS else self.path
            )
            filled = source.fill_missing_from(open_babi(other_path, self.fill_missing_from))
            if filled:
                warnings.warn(
                    f"{source.variant}: filled the missing files {', '.join(filled)} from {self.fill_missing_from}",
                    stacklevel=2,
                )
        data = source.read(splits, allow_missing=self.allow_missing)
        if self.tasks is not None:
            data = {s: [st for st in stories if st.task in self.tasks] for s, stories in data.items()}
        return data


@dataclass
class CatbAbI:
    """The encoded train/valid/test splits of catbAbI and their vocabulary."""

    vocab: Vocabulary
    splits: dict[str, EncodedSplit] = field(default_factory=dict)


def load_catbabi(spec: DataSpec, splits: Sequence[str] = SPLITS, vocab: Vocabulary | None = None) -> CatbAbI:
    """Read and encode ``splits``; the vocabulary is built from them unless ``vocab`` is given."""
    stories = spec.read(splits)
    for split, items in stories.items():
        if not items:
            raise ValueError(f"the {split} split of {spec.describe()} has no stories")
    vocab = vocab or Vocabulary.from_stories(s for items in stories.values() for s in items)
    return CatbAbI(vocab, {split: encode_split(items, vocab) for split, items in stories.items()})
