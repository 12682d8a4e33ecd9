"""bAbI tasks on a grid: two-argument relations (4), positional reasoning (17) and path finding (19).

Places and shapes sit on the cells of a grid (x grows to the east/right, y to the north/up). "The
kitchen is north of the office" puts the kitchen on the cell right above the office, so two facts
sharing a place fix the relative position of the other two, and no two things share a cell.
"""

from __future__ import annotations

import random

from fwm_rl.babi.generator.story import StoryWriter, join_answer
from fwm_rl.babi.generator.vocab import DIRECTIONS, OPPOSITE, ROOMS

__all__ = ["path_finding", "positional_reasoning", "two_arg_relations"]

Cell = tuple[int, int]

#: Task 17: the shapes and the four relations with their grid steps.
SHAPES = ("triangle", "red square", "blue square", "pink rectangle", "red sphere", "yellow square")
RELATIONS = {"above": (0, 1), "below": (0, -1), "to the left of": (-1, 0), "to the right of": (1, 0)}
INVERSE = {"above": "below", "below": "above", "to the left of": "to the right of", "to the right of": "to the left of"}
QUESTIONS_17 = 8


def _step(cell: Cell, delta: Cell) -> Cell:
    return cell[0] + delta[0], cell[1] + delta[1]


def _direction(frm: Cell, to: Cell) -> str:
    """The compass word for going from ``frm`` to the neighbouring cell ``to``."""
    return next(d for d, (_, delta) in DIRECTIONS.items() if _step(frm, delta) == to)


def _tell_direction(rng: random.Random, story: StoryWriter, a: str, direction: str, b: str) -> int:
    """Say that ``a`` is ``direction`` of ``b``, either that way round or the inverse way."""
    if rng.random() < 0.5:
        return story.say(f"the {a} is {direction} of the {b}")
    return story.say(f"the {b} is {OPPOSITE[direction]} of the {a}")


def two_arg_relations(rng: random.Random) -> StoryWriter:
    """Task 4: two facts about a place's neighbours; "What is north of the kitchen?" / "What is the
    kitchen north of?" about one of them."""
    story = StoryWriter()
    center, *others = rng.sample(ROOMS, 3)
    facts = list(zip(others, rng.sample(list(DIRECTIONS), 2)))  # (place, its direction from center)
    rng.shuffle(facts)
    lines = [_tell_direction(rng, story, place, direction, center) for place, direction in facts]
    i = rng.randrange(2)
    (place, direction), line = facts[i], lines[i]
    question, answer = rng.choice(
        [
            (f"what is {direction} of the {center}", place),
            (f"what is {OPPOSITE[direction]} of the {place}", center),
            (f"what is the {place} {direction} of", center),
            (f"what is the {center} {OPPOSITE[direction]} of", place),
        ]
    )
    story.ask(question, answer, [line])
    return story


def positional_reasoning(rng: random.Random) -> StoryWriter:
    """Task 17: two shapes placed next to a third; eight yes/no questions on the first two."""
    story = StoryWriter()
    middle, *pair = rng.sample(SHAPES, 3)
    cells: dict[str, Cell] = {middle: (0, 0)}
    lines: dict[str, int] = {}
    for shape in pair:
        relation = rng.choice([r for r, d in RELATIONS.items() if d not in cells.values()])
        cells[shape] = RELATIONS[relation]
        if rng.random() < 0.5:
            lines[shape] = story.say(f"the {shape} is {relation} the {middle}")
        else:
            lines[shape] = story.say(f"the {middle} is {INVERSE[relation]} the {shape}")
    for _ in range(QUESTIONS_17):
        a, b = rng.sample(pair, 2)
        (ax, ay), (bx, by) = cells[a], cells[b]
        axes = [axis for axis, differ in (("x", ax != bx), ("y", ay != by)) if differ]
        true = {"x": "to the right of" if ax > bx else "to the left of", "y": "above" if ay > by else "below"}[
            rng.choice(axes)
        ]
        relation = true if rng.random() < 0.5 else INVERSE[true]
        story.ask(f"is the {a} {relation} the {b}", "yes" if relation == true else "no", [lines[a], lines[b]])
    return story


def path_finding(rng: random.Random) -> StoryWriter:
    """Task 19: five facts lay out six rooms; the two steps from one room to another ("s,e")."""
    story = StoryWriter()
    rooms = rng.sample(ROOMS, len(ROOMS))
    cells: dict[str, Cell] = {rooms[0]: (0, 0)}
    edges = []  # (room, direction, anchor): room is direction of anchor
    for room in rooms[1:]:
        while True:
            anchor, direction = rng.choice(sorted(cells)), rng.choice(list(DIRECTIONS))
            cell = _step(cells[anchor], DIRECTIONS[direction][1])
            if cell not in cells.values():
                break
        cells[room] = cell
        edges.append((room, direction, anchor))
    rng.shuffle(edges)
    line = {
        frozenset((room, anchor)): _tell_direction(rng, story, room, direction, anchor) for room, direction, anchor in edges
    }
    neighbours = {r: [n for n in rooms if frozenset((r, n)) in line] for r in rooms}
    paths = [(a, m, b) for m in rooms for a in neighbours[m] for b in neighbours[m] if a != b]
    a, m, b = rng.choice(paths)
    steps = [DIRECTIONS[_direction(cells[a], cells[m])][0], DIRECTIONS[_direction(cells[m], cells[b])][0]]
    story.ask(f"how do you go from the {a} to the {b}", join_answer(steps), [line[frozenset((a, m))], line[frozenset((m, b))]])
    return story
