"""Reader for the official bAbI tasks v1.2 files (Weston et al., 2015).

File format, one line each, numbered from 1 within a story (a line index of 1 starts a new story)::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary?<TAB>bathroom<TAB>1

Layout of the release (``tasks_1-20_v1-2.tar.gz``)::

    tasks_1-20_v1-2/<variant>/qa{N}_{split}.txt             # en-valid, en-valid-10k: train/valid/test
    tasks_1-20_v1-2/<variant>/qa{N}_{task-name}_{split}.txt  # en, en-10k: train/test only

:func:`open_babi` accepts the ``.tar.gz`` itself, the extracted ``tasks_1-20_v1-2`` folder (or a folder
holding it; ``variant`` picks the variant) or a variant folder such as ``.../en-valid-10k``.
Variants without valid files (``en``, ``en-10k``) get a validation split the way ``en-valid`` was
made from ``en``: the last 10% of the stories of every training file.
"""

from __future__ import annotations

import gzip
import re
import tarfile
import warnings
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SPLITS",
    "VARIANTS",
    "BabiFormatError",
    "BabiSource",
    "Question",
    "Sentence",
    "Story",
    "open_babi",
    "parse_babi_text",
]

VARIANTS = ("en", "en-10k", "en-valid", "en-valid-10k")
SPLITS = ("train", "valid", "test")
DEFAULT_VARIANT = "en-valid-10k"  # the paper's choice (appendix D)
TASKS_FOLDER = "tasks_1-20_v1-2"
#: Fraction of every training file held out as validation for variants without valid files.
VALID_FRACTION = 0.1

_FILE_RE = re.compile(r"^qa(\d+)_(?:[a-z-]+_)?(train|valid|test)\.txt$")


class BabiFormatError(ValueError):
    """A line of a bAbI file does not follow the v1.2 format; the message names file and line."""


@dataclass(frozen=True)
class Sentence:
    """A story line ``N text.``."""

    text: str


@dataclass(frozen=True)
class Question:
    """A question line ``N text?<TAB>answer<TAB>supporting ids``."""

    text: str
    answer: str
    supports: tuple[int, ...]


@dataclass(frozen=True)
class Story:
    """One bAbI story (line index 1 up to the next 1) of task ``task``; ``source`` is ``file:line``."""

    task: int
    lines: tuple[Sentence | Question, ...]
    source: str

    @property
    def n_questions(self) -> int:
        return sum(isinstance(line, Question) for line in self.lines)


_EXPECTED = "expected 'N sentence.' or 'N question?<TAB>answer<TAB>supporting ids'"


def parse_babi_text(text: str, task: int, source: str = "<text>") -> list[Story]:
    """Parse the text of one bAbI file into its stories (every story, the last one included).

    Blank lines are skipped. Any other line that is not in the v1.2 format raises
    :class:`BabiFormatError` naming ``source`` and the line number.
    """
    stories: list[Story] = []
    lines: list[Sentence | Question] = []
    start, previous = 0, 0

    def fail(lineno: int, raw: str, problem: str):
        raise BabiFormatError(f"{source}, line {lineno}: {problem} in {raw!r}; {_EXPECTED}")

    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        index_str, _, rest = raw.strip("\r\n").partition(" ")
        if not index_str.isdigit() or int(index_str) < 1 or not rest.strip():
            fail(lineno, raw, "no line index followed by text")
        index = int(index_str)
        if index == 1:
            if lines:
                stories.append(Story(task, tuple(lines), f"{source}:{start}"))
            lines, start = [], lineno
        elif index != previous + 1:
            fail(lineno, raw, f"line index {index} does not follow {previous} (a story restarts at 1)")
        previous = index
        if "\t" in rest:
            fields = rest.split("\t")
            if len(fields) not in (2, 3) or not fields[0].strip().endswith("?") or not fields[1].strip():
                fail(lineno, raw, "a question line needs 'question?', an answer and supporting ids separated by tabs")
            supports = fields[2].split() if len(fields) == 3 else []
            if not all(s.isdigit() for s in supports):
                fail(lineno, raw, "supporting ids must be line numbers")
            lines.append(Question(fields[0].strip(), fields[1].strip(), tuple(int(s) for s in supports)))
        else:
            if rest.rstrip().endswith("?"):
                fail(lineno, raw, "a question without a tab-separated answer")
            if not rest.rstrip().endswith("."):
                fail(lineno, raw, "a sentence must end with '.'")
            lines.append(Sentence(rest.strip()))
    if lines:
        stories.append(Story(task, tuple(lines), f"{source}:{start}"))
    return stories


class BabiSource:
    """The files of one bAbI variant, in a folder or inside the ``.tar.gz``.

    ``files[(split, task)]`` is the member name of each file found. Nothing is read until
    :meth:`read` is called, and then only the files of the splits asked for.
    """

    def __init__(self, root: Path, variant: str, files: dict[tuple[str, int], str], archive: Path | None = None):
        self.root, self.variant, self.files, self.archive = root, variant, files, archive
        self.tasks = sorted({task for _, task in files})
        self.has_valid_files = any(split == "valid" for split, _ in files)
        #: ``(split, task)`` -> (source, name) of files taken from another variant (:meth:`fill_missing_from`)
        self.filled: dict[tuple[str, int], tuple[BabiSource, str]] = {}

    def fill_missing_from(self, other: BabiSource) -> list[str]:
        """Take each file this variant lacks (for a task it has) from the variant ``other`` (e.g. the
        shared archive's missing ``en-valid-10k/qa3_train.txt`` from ``en-valid``); returns the names
        of the files taken, also kept in :attr:`filled`."""
        if other.has_valid_files != self.has_valid_files:
            raise ValueError(
                f"variant {other.variant!r} cannot fill {self.variant!r}: one has validation files and the other not"
            )
        taken = []
        for split in {s for s, _ in self.files} | {s for s, _ in other.files}:
            for task in self.tasks:
                if (split, task) not in self.files and (split, task) in other.files:
                    self.filled[(split, task)] = (other, other.files[(split, task)])
                    taken.append(f"{other.variant}/{Path(other.files[(split, task)]).name}")
        return sorted(taken)

    def __repr__(self) -> str:
        where = self.archive if self.archive is not None else self.root
        return f"BabiSource({str(where)!r}, variant={self.variant!r}, tasks={len(self.tasks)})"

    def _describe(self, name: str) -> str:
        return f"{self.archive}:{name}" if self.archive is not None else str(self.root / name)

    def _file_splits(self, split: str) -> tuple[str, ...]:
        """The file split a requested split is read from (``valid`` comes from ``train`` without valid files)."""
        return (split,) if self.has_valid_files or split == "test" else ("train",)

    def missing(self, splits: Iterable[str]) -> list[str]:
        """Expected files (tasks present in some split of the variant) that are absent for ``splits``."""
        out = []
        for split in splits:
            for file_split in self._file_splits(split):
                stem = "" if self.variant.startswith("en-valid") else "*_"  # en / en-10k names carry the task name
                out += [
                    f"{self.variant}/qa{t}_{stem}{file_split}.txt"
                    for t in self.tasks
                    if (file_split, t) not in self.files and (file_split, t) not in self.filled
                ]
        return sorted(set(out))

    def read(self, splits: Sequence[str] = SPLITS, allow_missing: bool = False) -> dict[str, list[Story]]:
        """Stories of each split, task by task in file order.

        A task file missing from a split raises :class:`FileNotFoundError` unless
        ``allow_missing`` (then the split goes without that task, with a warning).
        """
        for split in splits:
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}")
        missing = self.missing(splits)
        if missing and not allow_missing:
            raise FileNotFoundError(
                f"bAbI files missing in {self.archive or self.root}: {', '.join(missing)} "
                f"(other splits have these tasks); pass --allow-missing to go on without them, or "
                f"read only other splits (--splits)"
            )
        if missing:
            warnings.warn(f"going on without the missing bAbI files {', '.join(missing)}", stacklevel=2)
        wanted = {(fs, t) for s in splits for fs in self._file_splits(s) for t in self.tasks if (fs, t) in self.files}
        texts = self._read_texts({self.files[key]: key for key in wanted})
        described = {key: self._describe(self.files[key]) for key in wanted}
        for key in {(fs, t) for s in splits for fs in self._file_splits(s) for t in self.tasks} & set(self.filled):
            source, name = self.filled[key]
            texts.update(source._read_texts({name: key}))
            described[key] = source._describe(name)
        parsed = {key: parse_babi_text(texts[key], key[1], described[key]) for key in sorted(described)}
        empty = [described[key] for key, stories in parsed.items() if not stories]
        if empty and not allow_missing:
            raise ValueError(
                f"bAbI files without a single story: {', '.join(empty)}; pass --allow-missing to go on without them"
            )
        if empty:
            warnings.warn(f"going on without the empty bAbI files {', '.join(empty)}", stacklevel=2)
        out: dict[str, list[Story]] = {}
        for split in splits:
            stories: list[Story] = []
            for task in self.tasks:
                if self.has_valid_files or split == "test":
                    stories += parsed.get((split, task), [])
                elif ("train", task) in parsed:  # en / en-10k: hold out the end of each training file
                    task_stories = parsed[("train", task)]
                    cut = len(task_stories) - max(1, round(VALID_FRACTION * len(task_stories)))
                    stories += task_stories[cut:] if split == "valid" else task_stories[:cut]
            out[split] = stories
        return out

    def _read_texts(self, names: dict[str, tuple[str, int]]) -> dict[tuple[str, int], str]:
        source = self.archive or self.root
        try:
            if self.archive is None:
                return {key: _utf8((self.root / name).read_bytes(), self.root / name) for name, key in names.items()}
            texts = {}
            with tarfile.open(self.archive, "r:*") as tar:
                for member in tar:
                    if member.name in names:
                        texts[names[member.name]] = _utf8(tar.extractfile(member).read(), f"{self.archive}:{member.name}")
            return texts
        except (EOFError, tarfile.TarError, zlib.error, gzip.BadGzipFile) as exc:  # a truncated or corrupt archive
            raise ValueError(f"{source} could not be read ({exc or type(exc).__name__}); is the file complete?") from None


def _utf8(data: bytes, name) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _index_files(names: Iterable[str]) -> dict[tuple[str, int], str]:
    files = {}
    for name in names:
        match = _FILE_RE.match(Path(name).name)
        if match and 1 <= int(match.group(1)) <= 20:
            files[(match.group(2), int(match.group(1)))] = name
    return files


def open_babi(path: str | Path, variant: str | None = None) -> BabiSource:
    """Locate a bAbI variant at ``path`` (``.tar.gz``, ``tasks_1-20_v1-2`` folder, or variant folder).

    ``variant`` (default ``en-valid-10k``) picks the variant inside an archive or tasks folder;
    given with a variant folder it must name that folder.
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"unknown bAbI variant {variant!r}: choose from {', '.join(VARIANTS)}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"bAbI data {path} does not exist: pass the tasks_1-20_v1-2 .tar.gz, its extracted folder, or a variant folder"
        )
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise ValueError(f"{path} is a file but not a tar archive: pass the bAbI tasks_1-20_v1-2 .tar.gz or a folder")
        variant = variant or DEFAULT_VARIANT
        try:
            with tarfile.open(path, "r:*") as tar:
                names = [m.name for m in tar.getmembers() if m.isfile() and Path(m.name).parent.name == variant]
        except (EOFError, tarfile.TarError, zlib.error, gzip.BadGzipFile) as exc:  # a truncated or corrupt archive
            raise ValueError(f"{path} could not be read ({exc or type(exc).__name__}); is the file complete?") from None
        files = _index_files(names)
        if not files:
            raise FileNotFoundError(
                f"archive {path} holds no bAbI files of variant {variant!r} (expected .../{variant}/qa1_train.txt ...)"
            )
        return BabiSource(path, variant, files, archive=path)
    if (path / TASKS_FOLDER).is_dir():
        path = path / TASKS_FOLDER
    if path.name in VARIANTS and _index_files(p.name for p in path.iterdir()):
        if variant is not None and variant != path.name:
            raise ValueError(
                f"{path} is the {path.name!r} variant folder but --variant {variant!r} was asked for; pass the tasks folder instead"
            )
        return BabiSource(path, path.name, _index_files(p.name for p in path.iterdir()))
    variant = variant or DEFAULT_VARIANT
    folder = path / variant
    files = _index_files(p.name for p in folder.iterdir()) if folder.is_dir() else {}
    if not files:
        found = [v for v in VARIANTS if (path / v).is_dir()]
        hint = f" (variants here: {', '.join(found)})" if found else ""
        raise FileNotFoundError(
            f"no bAbI files of variant {variant!r} under {path}{hint}: expected {folder}/qa1_train.txt ..."
        )
    return BabiSource(folder, variant, files)
