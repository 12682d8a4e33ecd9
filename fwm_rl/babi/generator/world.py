"""The simulated house of the object tasks (bAbI tasks 2, 3, 5, 6, 7 and 8).

People move between rooms, pick up, drop and give objects. Every action is physically possible
(a person picks up an object lying in their room or one nobody has seen yet, gives it only to
someone in the same room) and is told as one sentence of the story. The world keeps, next to its
state, the line indices that prove each fact, so that every question gets correct supporting facts:

- ``moved_at[person]``: the line of the person's last move (it tells where they are);
- ``object_lines[person]``: every line where the person took, dropped, gave or received something
  (tasks 7 and 8 count and list from these);
- ``trajectory[object]``: the rooms an object went through while carried (task 3).

A person's first action is always a move, so a person handling an object is in a known room.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fwm_rl.babi.generator.story import StoryWriter
from fwm_rl.babi.generator.vocab import DROP_VERBS, GIVE_VERBS, MOVE_VERBS, PICK_VERBS

__all__ = ["Give", "Segment", "World"]


@dataclass(frozen=True)
class Segment:
    """An object arrives in ``room`` at line ``arrived`` (a carrier's move, or a first pick-up).

    ``picked`` is the line where its carrier at that time picked it up and ``came_from`` the line
    that put the carrier in the previous room (``None`` for the first sighting).
    """

    room: str
    arrived: int
    picked: int
    came_from: int | None


@dataclass(frozen=True)
class Give:
    """``giver`` gave ``obj`` to ``receiver`` at line ``line``."""

    giver: str
    obj: str
    receiver: str
    line: int


@dataclass
class World:
    """People, rooms and objects of one story, telling every action to ``story``."""

    rng: random.Random
    story: StoryWriter
    people: Sequence[str]
    rooms: Sequence[str]
    objects: Sequence[str] = ()
    #: Probabilities that a pick-up / a drop sentence ends with "there" (as often as in the official files).
    pick_there: float = 1.0
    drop_there: float = 0.2
    where: dict[str, str | None] = field(init=False)
    moved_at: dict[str, int] = field(init=False)
    holder: dict[str, str | None] = field(init=False)
    floor: dict[str, str | None] = field(init=False)
    dropped_at: dict[str, tuple[int, int]] = field(init=False)
    object_lines: dict[str, list[int]] = field(init=False)
    carrying: dict[str, list[str]] = field(init=False)
    last_event: dict[str, int] = field(init=False)
    carried_since: dict[str, int] = field(init=False)
    trajectory: dict[str, list[Segment]] = field(init=False)
    gives: list[Give] = field(init=False)

    def __post_init__(self) -> None:
        self.where = {p: None for p in self.people}
        self.moved_at = {}
        self.holder = {o: None for o in self.objects}
        self.floor = {o: None for o in self.objects}  # room an object lies in; None: not seen yet
        self.dropped_at = {}  # object -> (drop line, dropper's move line)
        self.object_lines = {p: [] for p in self.people}
        self.carrying = {p: [] for p in self.people}  # in the order they were acquired
        self.last_event = {}  # object -> its last pick-up/give/drop line
        self.carried_since = {}  # object -> line its holder got it
        self.trajectory = {o: [] for o in self.objects}
        self.gives = []

    # ----------------------------------------------------------------- actions
    def move(self, person: str, room: str | None = None) -> int:
        """``person`` goes to ``room`` (default: a random other room); returns the sentence's line."""
        if room is None:
            room = self.rng.choice([r for r in self.rooms if r != self.where[person]])
        line = self.story.say(f"{person} {self.rng.choice(MOVE_VERBS)} the {room}")
        came_from = self.moved_at.get(person)
        self.where[person], self.moved_at[person] = room, line
        for obj in self.carrying[person]:
            self.trajectory[obj].append(Segment(room, line, self.carried_since[obj], came_from))
        return line

    def pick(self, person: str, obj: str) -> int:
        line = self.story.say(f"{person} {self.rng.choice(PICK_VERBS)} the {obj}{self._there(self.pick_there)}")
        room = self.where[person]
        self.holder[obj], self.floor[obj] = person, None
        self.carrying[person].append(obj)
        self.object_lines[person].append(line)
        self.last_event[obj] = self.carried_since[obj] = line
        if not self.trajectory[obj]:
            self.trajectory[obj].append(Segment(room, self.moved_at[person], line, None))
        return line

    def drop(self, person: str, obj: str) -> int:
        line = self.story.say(f"{person} {self.rng.choice(DROP_VERBS)} the {obj}{self._there(self.drop_there)}")
        self.holder[obj], self.floor[obj] = None, self.where[person]
        self.dropped_at[obj] = (line, self.moved_at[person])
        self.carrying[person].remove(obj)
        self.object_lines[person].append(line)
        self.last_event[obj] = line
        return line

    def give(self, person: str, obj: str, receiver: str) -> int:
        line = self.story.say(f"{person} {self.rng.choice(GIVE_VERBS)} the {obj} to {receiver}")
        self.holder[obj] = receiver
        self.carrying[person].remove(obj)
        self.carrying[receiver].append(obj)
        self.object_lines[person].append(line)
        self.object_lines[receiver].append(line)
        self.last_event[obj] = self.carried_since[obj] = line
        self.gives.append(Give(person, obj, receiver, line))
        return line

    def _there(self, prob: float) -> str:
        return " there" if self.rng.random() < prob else ""

    # ------------------------------------------------------- random actions
    def candidates(self, kind: str) -> list[tuple]:
        """Every possible action of ``kind`` ("move", "pick", "drop", "give") as argument tuples."""
        placed = [p for p in self.people if self.where[p] is not None]
        if kind == "move":
            return [(p,) for p in self.people]
        if kind == "pick":
            return [
                (p, o)
                for p in placed
                for o in self.objects
                if self.holder[o] is None and self.floor[o] in (None, self.where[p])
            ]
        if kind == "drop":
            return [(p, o) for p in placed for o in self.carrying[p]]
        if kind == "give":
            return [
                (p, o, q)
                for p in placed
                for o in self.carrying[p]
                for q in placed
                if q != p and self.where[q] == self.where[p]
            ]
        raise ValueError(f"unknown action kind {kind!r}: choose from move, pick, drop, give")

    def act(self, weights: dict[str, float]) -> int:
        """One random possible action, its kind drawn with ``weights``; returns its line."""
        options = {kind: self.candidates(kind) for kind, w in weights.items() if w > 0}
        kinds = [k for k in options if options[k]]
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        args = self.rng.choice(options[kind])
        action: Callable[..., int] = getattr(self, kind)
        return action(*args)

    # ------------------------------------------------------------ knowledge
    def object_room(self, obj: str) -> tuple[str, list[int]] | None:
        """Where ``obj`` is and the two lines proving it (object event, then the move that places it)."""
        holder = self.holder[obj]
        if holder is not None:
            return self.where[holder], [self.last_event[obj], self.moved_at[holder]]
        if obj in self.dropped_at:
            drop_line, move_line = self.dropped_at[obj]
            return self.floor[obj], [drop_line, move_line]
        return None
