"""Word-level corpora for language modelling (paper section 4.3).

Two standard layouts are read, as used by AWD-LSTM and the paper's runs:

* Penn Treebank style: ``train.txt``, ``valid.txt``, ``test.txt``;
* WikiText-2 style: ``wiki.train.tokens``, ``wiki.valid.tokens``, ``wiki.test.tokens``.

Either may be gzipped (``train.txt.gz``, ``wiki.train.tokens.gz``). Each line is split on
white space and followed by one end-of-sentence token ``<eos>``; empty lines therefore
contribute a lone ``<eos>``, which gives the usual token counts (PTB 929,589 / 73,760 / 82,430;
WikiText-2 2,088,628 / 217,646 / 245,569). The vocabulary is built from the training split only
(in order of first appearance); a validation or test word outside it is an error, because the
standard files already map rare words to ``<unk>``.

Without a data folder the default corpus is text from the project's bAbI story generator
(:func:`babi_corpus`), so every command works on a machine without any downloaded data.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "EOS",
    "EOS_INDEX",
    "SPLITS",
    "Corpus",
    "Dictionary",
    "babi_corpus",
    "babi_story_lines",
    "find_split_files",
    "load_corpus",
    "load_data",
    "tokenize_lines",
]

#: End-of-sentence token appended to every line; it is index ``EOS_INDEX`` of every vocabulary.
EOS = "<eos>"
EOS_INDEX = 0
#: The three splits, in order.
SPLITS = ("train", "valid", "test")

#: File-name patterns of the supported layouts, ``{split}`` filled in.
_LAYOUTS = {"ptb": "{split}.txt", "wikitext": "wiki.{split}.tokens"}


class Dictionary:
    """Bidirectional word <-> index map of a text corpus, indices in order of first appearance; ``<eos>`` is always
    index ``EOS_INDEX`` (0). AWD-LSTM's name for it; catbAbI's :class:`fwm_rl.babi.catbabi.Vocabulary` is another
    thing (sorted words after ``<pad>`` = 0 and ``<eos>`` = 1)."""

    def __init__(self, words: Iterable[str] = ()):
        self.idx2word: list[str] = []
        self.word2idx: dict[str, int] = {}
        self.add(EOS)
        for word in words:
            self.add(word)

    def add(self, word: str) -> int:
        """Add ``word`` if new; return its index."""
        if word not in self.word2idx:
            self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: str) -> bool:
        return word in self.word2idx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dictionary) and self.idx2word == other.idx2word

    def encode(self, tokens: Sequence[str], source: str = "text") -> torch.Tensor:
        """Token indices as a 1-D ``LongTensor``; an unknown word raises ``KeyError`` naming ``source``."""
        try:
            return torch.tensor([self.word2idx[t] for t in tokens], dtype=torch.long)
        except KeyError as exc:
            word = exc.args[0]
            position = list(tokens).index(word)
            raise KeyError(
                f"word {word!r} (token {position} of {source}) is not in the vocabulary of {len(self)} words built "
                "from the training split; map rare words to '<unk>' in the data files (as the standard PTB and "
                "WikiText-2 files do) or add them to train"
            ) from None

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.idx2word[int(i)] for i in indices]


@dataclass
class Corpus:
    """A tokenised corpus: one 1-D ``LongTensor`` of word indices per split (``<eos>`` after each line)."""

    vocab: Dictionary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    #: where it came from: a folder path, or a description of the generated default
    source: str

    def split(self, name: str) -> torch.Tensor:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}: use one of {', '.join(SPLITS)}")
        return getattr(self, name)


def tokenize_lines(lines: Iterable[str]) -> list[str]:
    """Split each line on white space and append ``<eos>`` (the AWD-LSTM convention)."""
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


def find_split_files(data_dir: str | os.PathLike) -> dict[str, Path]:
    """The train/valid/test files of ``data_dir`` in either layout (plain or ``.gz``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"data folder {data_dir} does not exist (pass --data with a folder holding train.txt/valid.txt/test.txt or wiki.*.tokens)"
        )
    for pattern in _LAYOUTS.values():
        found = {}
        for split in SPLITS:
            name = pattern.format(split=split)
            for candidate in (data_dir / name, data_dir / f"{name}.gz"):
                if candidate.is_file():
                    found[split] = candidate
                    break
        if found:
            missing = [pattern.format(split=s) for s in SPLITS if s not in found]
            if missing:
                raise FileNotFoundError(
                    f"{data_dir} is missing {', '.join(missing)} (plain or .gz); all three splits are needed"
                )
            return found
    expected = " or ".join(", ".join(p.format(split=s) for s in SPLITS) for p in _LAYOUTS.values())
    raise FileNotFoundError(f"no corpus files in {data_dir}: expected {expected} (optionally gzipped)")


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); pass the corpus as UTF-8") from None
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt .gz
        raise ValueError(f"{path} could not be read ({exc}); is the file complete?") from None


def load_corpus(data_dir: str | os.PathLike, vocab: Dictionary | None = None) -> Corpus:
    """Read a PTB- or WikiText-style folder.

    ``vocab``: use this vocabulary (e.g. the one stored in a checkpoint) instead of building one
    from train; then every split, train included, must stay inside it.
    """
    files = find_split_files(data_dir)
    tokens = {split: tokenize_lines(_read_lines(path)) for split, path in files.items()}
    if all(token == EOS for token in tokens["train"]):
        raise ValueError(f"training file {files['train']} holds no words")
    if vocab is None:
        vocab = Dictionary(tokens["train"])
    encoded = {split: vocab.encode(tokens[split], source=str(files[split])) for split in SPLITS}
    return Corpus(vocab=vocab, source=str(Path(data_dir)), **encoded)


def load_data(data: str | os.PathLike | None, vocab: Dictionary | None = None) -> Corpus:
    """A folder through :func:`load_corpus`, or ``None`` for the generated default :func:`babi_corpus`."""
    if data is None:
        corpus = babi_corpus()
        if vocab is not None and corpus.vocab != vocab:
            raise ValueError(
                "the generated bAbI corpus no longer matches the checkpoint's vocabulary "
                "(the story generator changed); pass --data with the text the model was trained on"
            )
        return corpus
    return load_corpus(data, vocab=vocab)


def babi_story_lines(text: str) -> list[str]:
    """Official-format bAbI lines as plain sentences, one per line.

    ``"3 Mary went to the kitchen."`` becomes ``"mary went to the kitchen ."`` and
    ``"4 Where is Mary?<TAB>kitchen<TAB>3"`` becomes ``"where is mary ? kitchen"``: the line number
    and supporting-fact ids are dropped, words are lower-cased, punctuation is its own token and
    the answer follows its question (as in catbAbI's LM mode, so the answer is predicted too).
    """
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        number, _, rest = raw.strip().partition(" ")
        if not number.isdigit():
            raise ValueError(f"malformed bAbI line {raw!r}: expected 'N sentence' as in the official files")
        sentence, *answer = rest.split("\t")
        sentence = sentence.replace("?", " ?").replace(".", " .").replace(",", " ,")
        words = sentence.lower().split()
        if answer:
            words += answer[0].lower().replace(",", " ").split()
        lines.append(" ".join(words))
    return lines


def babi_corpus(
    tasks: Sequence[int] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20),
    stories: dict[str, int] | None = None,
    seed: int = 0,
) -> Corpus:
    """The embedded default corpus: generated bAbI stories of ``tasks`` as word-level text.

    ``stories`` gives the number of stories per task and split (default train 200, valid 20,
    test 20); the splits use disjoint seeds ``seed``, ``seed + 1``, ``seed + 2``. Generation is
    deterministic, so a checkpoint trained on it can be evaluated later without storing text.
    """
    from fwm_rl.babi.generator import generate_task_text

    stories = {"train": 200, "valid": 20, "test": 20, **(stories or {})}
    tokens = {}
    for offset, split in enumerate(SPLITS):
        lines: list[str] = []
        for task in tasks:
            lines += babi_story_lines(generate_task_text(task, stories[split], seed + offset))
        tokens[split] = tokenize_lines(lines)
    vocab = Dictionary(tokens["train"])
    source = f"generated bAbI stories (tasks {min(tasks)}-{max(tasks)}, seed {seed}; fwm_rl.babi.generator)"
    encoded = {split: vocab.encode(tokens[split], source=f"{source}, {split} split") for split in SPLITS}
    return Corpus(vocab=vocab, source=source, **encoded)
