"""Answer questions about a story of your own with a trained catbAbI model.

The text is in bAbI's format, one sentence or question per line: ``1 Mary went to the kitchen.``,
``2 Where is Mary?`` (a question may carry its expected answer after a tab, as in the official files:
``2 Where is Mary?<TAB>kitchen``). Line numbers are optional; a line numbered 1, or an empty line, starts a
new story. Each story is read from a fresh state, word by word as in catbAbI (``<eos>`` first, then the
words, ``.`` and ``?`` as words); at every ``?`` the model's distribution over the next word is its answer.
The answer word then enters the stream as in training: the expected answer where the text gives one, else the
model's own. The words reach the model in pieces of at most :data:`CHUNK` tokens, its state carried from one to the
next, so the memory a story takes stays the same however long its lines are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fwm_rl.babi.catbabi import Vocabulary, line_words
from fwm_rl.babi.models import CatbAbIModel
from fwm_rl.babi.reader import BabiFormatError, Question, Sentence

__all__ = ["CHUNK", "Answer", "answer_questions", "parse_story_text"]

#: The most tokens given to the model at once (a line of a million words is read in pieces of this length).
CHUNK = 1024


@dataclass(frozen=True)
class Answer:
    """The model's answer to one question of the text."""

    line: int  # line number in the text
    story: int  # 1 for the first story of the text
    question: str
    answer: str  # the most probable next word after the '?'
    probability: float  # its probability
    expected: str | None = None  # the answer the text gives, if any

    @property
    def correct(self) -> bool | None:
        return None if self.expected is None else self.answer == self.expected


def parse_story_text(text: str, source: str = "<text>") -> list[list[tuple[int, Sentence | Question]]]:
    """The stories of ``text``: lists of ``(line number, Sentence or Question)``; a question without an
    expected answer has ``answer=""``."""
    stories: list[list[tuple[int, Sentence | Question]]] = [[]]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        body = raw.strip()
        if not body:
            if stories[-1]:
                stories.append([])
            continue
        head, _, rest = body.partition(" ")
        if head.isdigit():
            if int(head) == 1 and stories[-1]:
                stories.append([])
            body = rest.strip()
        words, _, answer = body.partition("\t")
        words, answer = words.strip(), answer.split("\t")[0].strip()
        if words.endswith("?"):
            stories[-1].append((lineno, Question(words, answer, ())))
        elif words.endswith(".") and not answer:
            stories[-1].append((lineno, Sentence(words)))
        else:
            raise BabiFormatError(
                f"{source}, line {lineno}: {raw.strip()!r} is neither a sentence ending with '.' nor a "
                "question ending with '?' (optionally followed by a tab and the expected answer)"
            )
    return [story for story in stories if story]


@torch.no_grad()
def answer_questions(
    model: CatbAbIModel, vocab: Vocabulary, text: str, mode: str = "qa", source: str = "<text>"
) -> list[Answer]:
    """Every question of ``text`` answered by ``model`` (trained in ``mode``: in QA mode the FWM reads only at
    ``?``, as in training). A word outside the model's vocabulary is a ``ValueError`` naming it and its line."""
    device = next(model.parameters()).device
    answers: list[Answer] = []
    for number, story in enumerate(parse_story_text(text, source), start=1):
        state = None
        pending = [vocab.eos]
        for lineno, line in story:
            pending += vocab.encode(line_words(line), where=f"{source} line {lineno}").tolist()
            if not isinstance(line, Question):
                continue
            for start in range(0, len(pending), CHUNK):
                x = torch.tensor(pending[start : start + CHUNK], device=device).view(-1, 1)
                read_mask = (x == vocab.question_mark) if mode == "qa" else None
                logits, state = model(x, state, read_mask=read_mask)
            probs = torch.softmax(logits[-1, 0].float(), dim=-1)
            best = int(probs.argmax())
            expected = line.answer.lower() or None
            answers.append(
                Answer(
                    line=lineno,
                    story=number,
                    question=line.text,
                    answer=vocab.words[best],
                    probability=float(probs[best]),
                    expected=expected,
                )
            )
            pending = (
                [best]
                if expected is None
                else vocab.encode([expected], where=f"{source} line {lineno} (the expected answer)").tolist()
            )
        # (words after a story's last question change nothing that is asked)
    return answers
