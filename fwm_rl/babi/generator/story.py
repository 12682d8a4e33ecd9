"""A story under construction and its rendering in the bAbI v1.2 file format.

Every task generator appends sentences and questions to a :class:`StoryWriter`; a sentence gets the
next line index (counted from 1 within the story), and a question names the line indices of the
sentences that support its answer. :meth:`StoryWriter.render` writes the official format::

    1 Mary moved to the bathroom.
    2 Where is Mary?<TAB>bathroom<TAB>1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["StoryWriter", "capitalize", "join_answer"]


def capitalize(text: str) -> str:
    """First letter upper-cased (sentences start with a capital, as in the official files)."""
    return text[:1].upper() + text[1:]


def join_answer(words: Sequence[str]) -> str:
    """A multi-word answer as one comma-separated token (task 8 lists, task 19 paths): ``n,w``."""
    return ",".join(words)


@dataclass
class StoryWriter:
    """The lines of one story: sentences end with ``.``, questions with ``?`` plus answer and supports."""

    lines: list[str] = field(default_factory=list)
    n_questions: int = 0

    @property
    def next_index(self) -> int:
        """The line index the next sentence or question will get."""
        return len(self.lines) + 1

    def say(self, sentence: str) -> int:
        """Append a sentence (without its final ``.``) and return its line index."""
        self.lines.append(f"{self.next_index} {capitalize(sentence)}.")
        return len(self.lines)

    def ask(self, question: str, answer: str, supports: Sequence[int]) -> int:
        """Append a question (without ``?``), its one-token answer and supporting line indices."""
        if not supports or any(not 1 <= s < self.next_index for s in supports):
            raise AssertionError(f"supports {list(supports)} of {question!r} must be earlier lines of the story")
        if not answer or " " in answer:
            raise AssertionError(f"answer {answer!r} of {question!r} must be one non-empty token")
        self.lines.append(f"{self.next_index} {capitalize(question)}?\t{answer}\t{' '.join(map(str, supports))}")
        self.n_questions += 1
        return len(self.lines)

    def render(self) -> str:
        """The story in the official format, one line each, ending with a newline."""
        return "".join(line + "\n" for line in self.lines)
