"""The built-in bAbI story generator: official format, the task definitions, and correct answers.

The checks of correctness re-read the generated text with small independent simulations (they do
not use the generator's own bookkeeping).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from fwm_rl.babi.generator import TASK_NAMES, generate_task_text
from fwm_rl.babi.generator.dataset import write_dataset
from fwm_rl.babi.reader import Question, Sentence, open_babi, parse_babi_text

PEOPLE = "John|Mary|Sandra|Daniel"
ROOMS = {"bathroom", "bedroom", "garden", "hallway", "kitchen", "office"}
PLACES = {"bedroom", "cinema", "kitchen", "office", "park", "school"}
R = "|".join(sorted(ROOMS))
PL = "|".join(sorted(PLACES))
OBJ = "apple|football|milk"
SHAPE = "triangle|red square|blue square|pink rectangle|red sphere|yellow square"
THING = "box of chocolates|box|chest|suitcase|container|chocolate"
YES_NO = {"yes", "no"}
DIRECTIONS = [f"{a},{b}" for a in "nsew" for b in "nsew" if {a, b} not in ({"n", "s"}, {"e", "w"})]

# task -> (question patterns, the official answer set, supporting facts per question (min, max), questions per story)
DEFINITIONS = {
    1: ([rf"Where is ({PEOPLE})\?"], ROOMS, (1, 1), {5}),
    2: ([rf"Where is the ({OBJ})\?"], ROOMS, (2, 2), {5}),
    3: ([rf"Where was the ({OBJ}) before the ({R})\?"], ROOMS, (3, 3), {5}),
    4: (
        [rf"What is (north|south|east|west) of the ({R})\?", rf"What is the ({R}) (north|south|east|west) of\?"],
        ROOMS,
        (1, 1),
        {1},
    ),
    5: (
        [
            rf"Who gave the ({OBJ})\?",
            rf"Who received the ({OBJ})\?",
            r"What did (Bill|Fred|Jeff|Mary) give to (Bill|Fred|Jeff|Mary)\?",
            rf"Who did (Bill|Fred|Jeff|Mary) give the ({OBJ}) to\?",
            rf"Who gave the ({OBJ}) to (Bill|Fred|Jeff|Mary)\?",
        ],
        {"Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"},
        (1, 1),
        {5},
    ),
    6: ([rf"Is ({PEOPLE}) in the ({R})\?"], YES_NO, (1, 1), {5}),
    7: ([rf"How many objects is ({PEOPLE}) carrying\?"], {"none", "one", "two", "three"}, (1, 99), {5}),
    8: ([rf"What is ({PEOPLE}) carrying\?"], None, (1, 99), {5}),  # lists: checked below
    9: ([rf"Is ({PEOPLE}) in the ({R})\?"], YES_NO, (1, 1), {5}),
    10: ([rf"Is (Bill|Fred|Julie|Mary) in the ({PL})\?"], {"yes", "no", "maybe"}, (1, 1), {5}),
    11: ([rf"Where is ({PEOPLE})\?"], ROOMS, (2, 2), {5}),
    12: ([rf"Where is ({PEOPLE})\?"], ROOMS, (1, 1), {5}),
    13: ([rf"Where is ({PEOPLE})\?"], ROOMS, (2, 2), {5}),
    14: ([rf"Where was (Bill|Fred|Julie|Mary) before the ({PL})\?"], PLACES, (2, 2), {5}),
    15: ([r"What is (gertrude|winona|emily|jessica) afraid of\?"], {"cat", "mouse", "sheep", "wolf"}, (2, 2), {4}),
    16: ([r"What color is (Lily|Bernhard|Greg|Julius|Brian)\?"], {"white", "gray", "yellow", "green"}, (3, 3), {1}),
    17: ([rf"Is the ({SHAPE}) (above|below|to the left of|to the right of) the ({SHAPE})\?"], YES_NO, (2, 2), {8}),
    18: (
        [rf"Is the ({THING}) bigger than the ({THING})\?", rf"Does the ({THING}) fit in the ({THING})\?"],
        YES_NO,
        (2, 2),
        {5},
    ),
    19: ([rf"How do you go from the ({R}) to the ({R})\?"], set(DIRECTIONS), (2, 2), {1}),
    20: (
        [
            r"Where will (sumit|yann|jason|antoine) go\?",
            rf"Why did (sumit|yann|jason|antoine) go to the ({R})\?",
            r"Why did (sumit|yann|jason|antoine) get the (apple|milk|football|pajamas)\?",
        ],
        {"kitchen", "garden", "bedroom", "hungry", "thirsty", "bored", "tired"},
        (1, 1),
        None,
    ),
}

N_STORIES = 150


def stories(task: int, n: int = N_STORIES, seed: int = 0):
    return parse_babi_text(generate_task_text(task, n, seed), task, f"<task {task}>")


def qa(story):
    """(line index, Question) pairs of a story, line indices counted from 1."""
    return [(i, line) for i, line in enumerate(story.lines, start=1) if isinstance(line, Question)]


def test_task_names_are_the_official_file_stems():
    assert sorted(TASK_NAMES) == list(range(1, 21))
    assert TASK_NAMES[1] == "single-supporting-fact" and TASK_NAMES[19] == "path-finding"
    assert TASK_NAMES[20] == "agents-motivations" and TASK_NAMES[8] == "lists-sets"


@pytest.mark.parametrize("task", range(1, 21))
def test_task_follows_its_definition(task):
    patterns, answers, (lo, hi), per_story = DEFINITIONS[task]
    text = generate_task_text(task, N_STORIES, 0)
    assert text.endswith("\n") and not text.endswith("\n\n")
    for raw in text.splitlines():  # the official line format, checked on the raw text
        assert re.fullmatch(
            r"[1-9]\d* [A-Z][A-Za-z ]*[a-z]\.|[1-9]\d* [A-Z][A-Za-z ]*[a-z]\?\t[A-Za-z,]+\t[1-9]\d*( [1-9]\d*)*", raw
        ), raw
    parsed = parse_babi_text(text, task, f"<task {task}>")
    assert len(parsed) == N_STORIES
    seen = Counter()
    for story in parsed:
        questions = qa(story)
        assert per_story is None or len(questions) in per_story
        assert questions, "every story asks something"
        for index, q in questions:
            assert any(re.fullmatch(p, q.text) for p in patterns), q.text
            seen[q.answer] += 1
            assert lo <= len(q.supports) <= hi, (q, story.source)
            # supporting facts are earlier sentences (not questions) of the same story
            assert all(1 <= s < index and isinstance(story.lines[s - 1], Sentence) for s in q.supports), (q, story.source)
    if answers is not None:
        assert set(seen) <= answers
        if task != 7:  # three objects at once is rare in counting; the other sets all occur in 150 stories
            assert set(seen) == answers, sorted(answers - set(seen))
        else:
            assert {"none", "one", "two"} <= set(seen)


def test_lists_are_distinct_objects_or_nothing():
    answers = {q.answer for s in stories(8) for _, q in qa(s)}
    assert "nothing" in answers and any("," in a for a in answers)
    for a in answers - {"nothing"}:
        items = a.split(",")
        assert set(items) <= {"apple", "football", "milk"} and len(items) == len(set(items)), a


def test_yes_no_answers_are_balanced():
    for task in (6, 17, 18):
        counts = Counter(q.answer for s in stories(task) for _, q in qa(s))
        assert 0.3 < counts["yes"] / sum(counts.values()) < 0.7, (task, counts)


# ------------------------------------------------------ independent re-simulation
MOVE = re.compile(r"(\w+) (?:went|journeyed|travelled|moved|went back) to the (\w+)\.")
PICK = re.compile(rf"(\w+) (?:got|grabbed|picked up|took) the ({OBJ})(?: there)?\.")
DROP = re.compile(rf"(\w+) (?:dropped|left|discarded|put down) the ({OBJ})(?: there)?\.")
GIVE = re.compile(rf"(\w+) (?:gave|handed|passed) the ({OBJ}) to (\w+)\.")


class House:
    """Re-reads a story of tasks 1-8: where people are, who holds what, where dropped things lie."""

    def __init__(self):
        self.where, self.moved, self.holds, self.floor, self.touched = {}, {}, {}, {}, {}

    def read(self, index: int, text: str) -> None:
        if m := MOVE.fullmatch(text):
            self.where[m[1]], self.moved[m[1]] = m[2], index
        elif m := PICK.fullmatch(text):
            assert self.floor.get(m[2], self.where[m[1]]) == self.where[m[1]], f"{text}: the object is elsewhere"
            assert all(m[2] not in held for held in self.holds.values()), f"{text}: someone holds it"
            self.holds.setdefault(m[1], []).append(m[2])
            self.floor.pop(m[2], None)
            self.touched.setdefault(m[1], []).append(index)
        elif m := DROP.fullmatch(text):
            self.holds[m[1]].remove(m[2])
            self.floor[m[2]] = self.where[m[1]]
            self.touched.setdefault(m[1], []).append(index)
        elif m := GIVE.fullmatch(text):
            assert self.where[m[1]] == self.where[m[3]], f"{text}: not in the same room"
            self.holds[m[1]].remove(m[2])
            self.holds.setdefault(m[3], []).append(m[2])
            for person in (m[1], m[3]):
                self.touched.setdefault(person, []).append(index)
        else:
            raise AssertionError(f"unexpected sentence {text!r}")

    def object_room(self, obj: str) -> str:
        holder = [p for p, held in self.holds.items() if obj in held]
        return self.where[holder[0]] if holder else self.floor[obj]


def replay(story, answer_of):
    """Feed the sentences to a House; check every question with ``answer_of(house, question) -> (answer, supports)``."""
    house = House()
    for index, line in enumerate(story.lines, start=1):
        if isinstance(line, Sentence):
            house.read(index, line.text)
        else:
            answer, supports = answer_of(house, line)
            assert line.answer == answer, (line, story.source)
            if supports is not None:
                assert list(line.supports) == supports, (line, story.source)


@pytest.mark.parametrize("task", [1, 6])
def test_person_answers_are_correct(task):
    def answer(house, q):
        if task == 1:
            person = re.fullmatch(r"Where is (\w+)\?", q.text)[1]
            return house.where[person], [house.moved[person]]
        person, room = re.fullmatch(r"Is (\w+) in the (\w+)\?", q.text).groups()
        return ("yes" if house.where[person] == room else "no"), [house.moved[person]]

    for story in stories(task):
        replay(story, answer)


def test_object_location_answers_are_correct():
    def answer(house, q):
        obj = re.fullmatch(r"Where is the (\w+)\?", q.text)[1]
        return house.object_room(obj), None

    for story in stories(2):
        replay(story, answer)


@pytest.mark.parametrize("task", [7, 8])
def test_counting_and_lists_are_correct(task):
    words = ["none", "one", "two", "three"]

    def answer(house, q):
        person = re.fullmatch(r"(?:How many objects|What) is (\w+) carrying\?", q.text)[1]
        held = house.holds.get(person, [])
        if task == 7:
            return words[len(held)], house.touched[person]
        return (",".join(held) if held else "nothing"), house.touched[person]

    for story in stories(task):
        replay(story, answer)


def test_object_history_answers_are_correct():
    """Task 3: the room an object was carried from into the room asked about."""
    for story in stories(3, 60):
        house, path = House(), {}
        for index, line in enumerate(story.lines, start=1):
            if isinstance(line, Sentence):
                house.read(index, line.text)
                for obj in ("apple", "football", "milk"):
                    if obj in house.floor or any(obj in held for held in house.holds.values()):
                        room = house.object_room(obj)
                        if not path.get(obj) or path[obj][-1] != room:
                            path.setdefault(obj, []).append(room)
            else:
                obj, room = re.fullmatch(r"Where was the (\w+) before the (\w+)\?", line.text).groups()
                assert path[obj].count(room) == 1 and path[obj].index(room) > 0, (line, story.source)
                assert line.answer == path[obj][path[obj].index(room) - 1], (line, story.source)


def test_indefinite_knowledge_answers_are_correct():
    for story in stories(10):
        known = {}
        for line in story.lines:
            if isinstance(line, Sentence):
                if m := re.fullmatch(r"(\w+) is either in the (\w+) or the (\w+)\.", line.text):
                    known[m[1]] = ("maybe", {m[2], m[3]})
                elif m := (re.fullmatch(r"(\w+) is in the (\w+)\.", line.text) or MOVE.fullmatch(line.text)):
                    known[m[1]] = ("yes", {m[2]})
                else:
                    raise AssertionError(line.text)
            else:
                person, room = re.fullmatch(r"Is (\w+) in the (\w+)\?", line.text).groups()
                sure, rooms = known[person]
                assert line.answer == (sure if room in rooms else "no"), (line, story.source)


def test_deduction_and_path_answers_are_correct():
    singular = {"mice": "mouse", "cats": "cat", "sheep": "sheep", "wolves": "wolf"}
    for story in stories(15):
        fear, kind = {}, {}
        for line in story.lines:
            if isinstance(line, Sentence):
                if m := re.fullmatch(r"(\w+) are afraid of (\w+)\.", line.text):
                    fear[singular[m[1].lower()]] = singular[m[2]]
                else:
                    m = re.fullmatch(r"(\w+) is an? (\w+)\.", line.text)
                    kind[m[1].lower()] = m[2]
            else:
                pet = re.fullmatch(r"What is (\w+) afraid of\?", line.text)[1]
                assert line.answer == fear[kind[pet]]
    for story in stories(19):
        edges = {}
        for line in story.lines[:-1]:
            a, d, b = re.fullmatch(r"The (\w+) is (\w+) of the (\w+)\.", line.text).groups()
            edges.setdefault(b, {})[d[0]] = a  # from b, going d reaches a
            back = {"n": "s", "s": "n", "e": "w", "w": "e"}[d[0]]
            edges.setdefault(a, {})[back] = b
        q = story.lines[-1]
        start, goal = re.fullmatch(r"How do you go from the (\w+) to the (\w+)\?", q.text).groups()
        first, second = q.answer.split(",")
        assert edges[edges[start][first]][second] == goal and goal not in edges[start].values()


# ---------------------------------------------------------------- seeds and files
def test_deterministic_in_seed_and_seeds_differ():
    for task in (1, 3, 14, 20):
        assert generate_task_text(task, 20, 7) == generate_task_text(task, 20, 7)
        assert generate_task_text(task, 20, 7) != generate_task_text(task, 20, 8)
        # more stories extend the same stream
        assert generate_task_text(task, 30, 7).startswith(generate_task_text(task, 20, 7))
    assert generate_task_text(1, 0, 0) == ""


def test_stories_practically_never_repeat():
    for task in (2, 5, 7, 14):
        texts = [" ".join(line.text for line in s.lines) for s in stories(task, 400, seed=3)]
        assert len(set(texts)) == len(texts)


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="task id"):
        generate_task_text(21, 1, 0)
    with pytest.raises(ValueError, match="n_stories"):
        generate_task_text(1, -1, 0)
    with pytest.raises(ValueError, match="unknown bAbI variant"):
        write_dataset(tmp_path, variant="hn")
    with pytest.raises(ValueError, match="exactly"):
        write_dataset(tmp_path, variant="en", n_stories={"train": 2, "valid": 1, "test": 1})
    with pytest.raises(ValueError, match="task ids"):
        write_dataset(tmp_path, variant="en", n_stories={"train": 2, "test": 1}, tasks=[0])


@pytest.mark.parametrize("variant", ["en", "en-10k", "en-valid", "en-valid-10k"])
def test_write_dataset_uses_the_official_layout(tmp_path, variant):
    splits = ("train", "test") if variant in ("en", "en-10k") else ("train", "valid", "test")
    counts = dict(zip(splits, (6, 3, 4) if len(splits) == 3 else (6, 4)))
    folder = write_dataset(tmp_path, variant=variant, n_stories=counts, seed=1, tasks=[1, 19, 20])
    assert folder == tmp_path / "tasks_1-20_v1-2" / variant
    names = sorted(p.name for p in folder.iterdir())
    if variant.startswith("en-valid"):
        assert names == sorted(f"qa{t}_{s}.txt" for t in (1, 19, 20) for s in splits)
    else:
        assert names == sorted(f"qa{t}_{TASK_NAMES[t]}_{s}.txt" for t in (1, 19, 20) for s in splits)
    source = open_babi(tmp_path, variant=variant)
    assert source.tasks == [1, 19, 20]
    read = source.read(("train", "valid", "test"))  # en / en-10k: the reader holds out part of train as valid
    assert len(read["test"]) == 3 * counts["test"]
    assert len(read["train"]) + len(read["valid"]) == 3 * (counts["train"] + counts.get("valid", 0))
    task1 = {p.name.rsplit("_", 1)[1][:-4]: p.read_text() for p in folder.glob("qa1_*.txt")}
    assert task1["train"] == generate_task_text(1, counts["train"], 3)  # seed 1: the train split seed is 3 * 1 + 0
    assert task1["test"] == generate_task_text(1, counts["test"], 5)
    assert not task1["train"].startswith(task1["test"][:200])


def test_coreference_conjunction_and_time_answers_are_correct():
    mover = r"(?:went|journeyed|travelled|moved|went back) to the (\w+)"
    for task in (11, 12, 13):
        for story in stories(task):
            where, last_named = {}, []
            for line in story.lines:
                if isinstance(line, Question):
                    assert line.answer == where[re.fullmatch(r"Where is (\w+)\?", line.text)[1]], (line, story.source)
                elif m := re.fullmatch(rf"(?:Then|After that|Afterwards|Following that) (?:he|she|they) {mover}\.", line.text):
                    where.update({p: m[1] for p in last_named})
                else:
                    m = re.fullmatch(rf"(\w+)(?: and (\w+))? {mover}\.", line.text)
                    last_named = [p for p in m.groups()[:2] if p]
                    where.update({p: m[3] for p in last_named})
    order = ["yesterday", "this morning", "this afternoon", "this evening"]
    for story in stories(14):
        day = {}
        for line in story.lines:
            if isinstance(line, Sentence):
                text = line.text[:-1]
                time = next(t for t in order if text.lower().startswith(t) or text.endswith(t))
                m = re.search(rf"(Bill|Fred|Julie|Mary) {mover}", text)
                day.setdefault(m[1], {})[order.index(time)] = m[2]
            else:
                person, place = re.fullmatch(r"Where was (\w+) before the (\w+)\?", line.text).groups()
                (t,) = [t for t, p in day[person].items() if p == place]
                assert line.answer == day[person][t - 1], (line, story.source)


def test_size_and_position_answers_are_correct():
    for story in stories(18):
        smaller = set()  # (a, b): a is smaller than b, closed under transitivity
        for line in story.lines:
            if isinstance(line, Sentence):
                if m := re.fullmatch(rf"The ({THING}) fits inside the ({THING})\.", line.text):
                    smaller.add((m[1], m[2]))
                else:
                    m = re.fullmatch(rf"The ({THING}) is bigger than the ({THING})\.", line.text)
                    smaller.add((m[2], m[1]))
                smaller |= {(a, d) for a, b in smaller for c, d in smaller if b == c}
                assert not any((b, a) in smaller for a, b in smaller), story.source
            elif m := re.fullmatch(rf"Is the ({THING}) bigger than the ({THING})\?", line.text):
                assert (m[2], m[1]) in smaller or (m[1], m[2]) in smaller
                assert line.answer == ("yes" if (m[2], m[1]) in smaller else "no"), (line, story.source)
            else:
                m = re.fullmatch(rf"Does the ({THING}) fit in the ({THING})\?", line.text)
                assert (m[2], m[1]) in smaller or (m[1], m[2]) in smaller
                assert line.answer == ("yes" if (m[1], m[2]) in smaller else "no"), (line, story.source)
    delta = {"above": (0, 1), "below": (0, -1), "to the left of": (-1, 0), "to the right of": (1, 0)}
    for story in stories(17):
        facts = [
            re.fullmatch(rf"The ({SHAPE}) is ({'|'.join(delta)}) the ({SHAPE})\.", line.text).groups()
            for line in story.lines[:2]
        ]
        cell = {facts[0][2]: (0, 0)}
        for _ in range(2):  # place the shapes relative to one another through the shared one
            for a, rel, b in facts:
                if b in cell and a not in cell:
                    cell[a] = (cell[b][0] + delta[rel][0], cell[b][1] + delta[rel][1])
                if a in cell and b not in cell:
                    cell[b] = (cell[a][0] - delta[rel][0], cell[a][1] - delta[rel][1])
        for line in story.lines[2:]:
            a, rel, b = re.fullmatch(rf"Is the ({SHAPE}) ({'|'.join(delta)}) the ({SHAPE})\?", line.text).groups()
            dx, dy = cell[a][0] - cell[b][0], cell[a][1] - cell[b][1]
            holds = {"above": dy > 0, "below": dy < 0, "to the left of": dx < 0, "to the right of": dx > 0}[rel]
            assert line.answer == ("yes" if holds else "no"), (line, story.source)
