"""bAbI tasks told in the simulated house (:mod:`.world`): where people and objects are, and what they carry.

=====  ==========================  =============================================================
task   question                    answer (supporting facts)
=====  ==========================  =============================================================
1      Where is Mary?              her room (her last move)
2      Where is the football?      its room (the object's last event; the move placing it)
3      Where was the apple         the room it was carried from into the kitchen (its carrier's
       before the kitchen?         pick-up; the move into the kitchen; the move before it)
5      Who gave the milk? ...      giver, receiver or object of a "give" (that sentence)
6      Is John in the office?      yes / no (his last move)
7      How many objects is Mary    none / one / two / three (every sentence where she took,
       carrying?                   dropped, gave or received something)
8      What is Mary carrying?      the objects in the order she got them, "apple,milk", or
                                   "nothing" (as task 7)
=====  ==========================  =============================================================

Every story has five questions, as in the official tasks.
"""

from __future__ import annotations

import random

from fwm_rl.babi.generator.story import StoryWriter, join_answer
from fwm_rl.babi.generator.vocab import COUNT_WORDS, GIVERS, OBJECTS, PEOPLE, ROOMS
from fwm_rl.babi.generator.world import Give, World

__all__ = [
    "counting",
    "lists_sets",
    "single_supporting_fact",
    "three_arg_relations",
    "three_supporting_facts",
    "two_supporting_facts",
    "yes_no_questions",
]

QUESTIONS_PER_STORY = 5
#: Action mixes: how often a random action is a move, pick-up, drop or give.
CARRY = {"move": 0.5, "pick": 0.25, "drop": 0.25}
CARRY_AND_GIVE = {"move": 0.45, "pick": 0.25, "drop": 0.15, "give": 0.15}
GIVING = {"move": 0.4, "pick": 0.25, "drop": 0.1, "give": 0.25}


def single_supporting_fact(rng: random.Random) -> StoryWriter:
    """Task 1: two moves, then where one of the people is."""
    story = StoryWriter()
    world = World(rng, story, PEOPLE, ROOMS)
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(2):
            world.move(rng.choice(PEOPLE))
        person = rng.choice([p for p in PEOPLE if world.where[p] is not None])
        story.ask(f"where is {person}", world.where[person], [world.moved_at[person]])
    return story


def two_supporting_facts(rng: random.Random) -> StoryWriter:
    """Task 2: where an object is, known from who handled it and where that person went."""
    story = StoryWriter()
    world = World(rng, story, PEOPLE, ROOMS, OBJECTS)
    asked: dict[str, tuple[str, list[int]]] = {}
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(rng.randint(1, 4)):
            world.act(CARRY)
        while not (known := [o for o in OBJECTS if world.object_room(o) is not None]):
            world.act(CARRY)
        # prefer an object whose answer or supporting facts changed since it was last asked about
        fresh = [o for o in known if asked.get(o) != world.object_room(o)]
        obj = rng.choice(fresh if fresh and rng.random() < 0.8 else known)
        room, supports = asked[obj] = world.object_room(obj)
        story.ask(f"where is the {obj}", room, supports)
    return story


def three_supporting_facts(rng: random.Random) -> StoryWriter:
    """Task 3: where an object was before it was carried into a room.

    Asked only for a room the object has entered once, so that "before" is unambiguous.
    """
    story = StoryWriter()
    world = World(rng, story, PEOPLE, ROOMS, OBJECTS, pick_there=0.2)
    asked: set[tuple[str, str]] = set()
    while story.n_questions < QUESTIONS_PER_STORY:
        world.act(CARRY)
        askable = []
        for obj, path in world.trajectory.items():
            rooms = [segment.room for segment in path]
            askable += [(obj, i) for i in range(1, len(path)) if rooms.count(rooms[i]) == 1]
        fresh = [(obj, i) for obj, i in askable if (obj, world.trajectory[obj][i].room) not in asked]
        if not askable or (not fresh and rng.random() < 0.8):
            continue
        obj, i = rng.choice(fresh or askable)
        segment = world.trajectory[obj][i]
        asked.add((obj, segment.room))
        story.ask(
            f"where was the {obj} before the {segment.room}",
            world.trajectory[obj][i - 1].room,
            [segment.picked, segment.arrived, segment.came_from],
        )
    return story


def _give_questions(gives: list[Give], give: Give) -> list[tuple[str, str]]:
    """The questions about ``give`` that the story so far answers unambiguously, with their answers."""
    latest_of_object = [g for g in gives if g.obj == give.obj][-1] is give
    out = []
    if latest_of_object:
        out += [(f"who gave the {give.obj}", give.giver), (f"who received the {give.obj}", give.receiver)]
    if {g.obj for g in gives if (g.giver, g.receiver) == (give.giver, give.receiver)} == {give.obj}:
        out += 2 * [(f"what did {give.giver} give to {give.receiver}", give.obj)]  # twice as frequent, as in bAbI
    if {g.receiver for g in gives if (g.giver, g.obj) == (give.giver, give.obj)} == {give.receiver}:
        out.append((f"who did {give.giver} give the {give.obj} to", give.receiver))
    if {g.giver for g in gives if (g.obj, g.receiver) == (give.obj, give.receiver)} == {give.giver}:
        out.append((f"who gave the {give.obj} to {give.receiver}", give.giver))
    return out


def three_arg_relations(rng: random.Random) -> StoryWriter:
    """Task 5: who gave what to whom (giver, receiver or object of one "give" sentence)."""
    story = StoryWriter()
    world = World(rng, story, GIVERS, ROOMS, OBJECTS)
    while story.n_questions < QUESTIONS_PER_STORY:
        world.act(GIVING)
        if not world.gives or (world.gives[-1].line != story.next_index - 1 and rng.random() < 0.8):
            continue
        give = world.gives[-1] if rng.random() < 0.7 else rng.choice(world.gives)
        questions = _give_questions(world.gives, give)
        if questions:
            question, answer = rng.choice(questions)
            # the latest sentence telling this very give (an identical give may have been told before)
            line = max(g.line for g in world.gives if (g.giver, g.obj, g.receiver) == (give.giver, give.obj, give.receiver))
            story.ask(question, answer, [line])
    return story


def yes_no_questions(rng: random.Random) -> StoryWriter:
    """Task 6: is a person in a given room (yes / no, about equally often)."""
    story = StoryWriter()
    world = World(rng, story, PEOPLE, ROOMS, OBJECTS)
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(rng.choice((2, 2, 2, 3, 4))):
            world.act(CARRY)
        placed = [p for p in PEOPLE if world.where[p] is not None]
        if not placed:
            continue
        person = rng.choice(placed)
        here = world.where[person]
        room = here if rng.random() < 0.5 else rng.choice([r for r in ROOMS if r != here])
        story.ask(f"is {person} in the {room}", "yes" if room == here else "no", [world.moved_at[person]])
    return story


def _carrying_story(rng: random.Random, actions: dict[str, float], ask) -> StoryWriter:
    """Tasks 7 and 8: a few actions, then a question about someone who has handled objects."""
    story = StoryWriter()
    world = World(rng, story, PEOPLE, ROOMS, OBJECTS)
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(rng.choice((1, 2, 2, 3))):
            world.act(actions)
        handlers = [p for p in PEOPLE if world.object_lines[p]]
        if handlers:
            person = rng.choice(handlers)
            question, answer = ask(person, world.carrying[person])
            story.ask(question, answer, world.object_lines[person])
    return story


def counting(rng: random.Random) -> StoryWriter:
    """Task 7: how many objects a person carries (none, one, two, three)."""
    return _carrying_story(rng, CARRY_AND_GIVE, lambda p, held: (f"how many objects is {p} carrying", COUNT_WORDS[len(held)]))


def lists_sets(rng: random.Random) -> StoryWriter:
    """Task 8: what a person carries, as one comma-separated token in the order acquired, or "nothing".

    People do not give objects in this task (as in the official task 8).
    """
    return _carrying_story(rng, CARRY, lambda p, held: (f"what is {p} carrying", join_answer(held) if held else "nothing"))
