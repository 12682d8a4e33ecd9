"""bAbI tasks about where people are, told in different ways.

=====  =============================================  ==========================================
task   what the story says                            question, answer (supporting facts)
=====  =============================================  ==========================================
9      "Sandra is not in the bedroom."                Is Sandra in the bedroom? yes / no
       "Mary is no longer in the office."             (the last sentence about her)
10     "Bill is either in the school or the park."    Is Bill in the park? yes / no / maybe
11     "Mary went to the kitchen. Then she went       Where is Mary? (both sentences)
       to the garden."
12     "Mary and Daniel went to the kitchen."         Where is Daniel? (that sentence)
13     "Mary and Daniel went to the kitchen.          Where is Daniel? (both sentences)
       Afterwards they went to the office."
14     "Yesterday Julie went to the park. Julie       Where was Julie before the school?
       went to the school this morning."              (the two sentences)
=====  =============================================  ==========================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fwm_rl.babi.generator.story import StoryWriter
from fwm_rl.babi.generator.vocab import MOVE_VERBS, PEOPLE, PLACES, PRONOUN, ROOMS, VISITORS

__all__ = [
    "basic_coreference",
    "compound_coreference",
    "conjunction",
    "indefinite_knowledge",
    "simple_negation",
    "time_reasoning",
]

QUESTIONS_PER_STORY = 5
#: How a sentence continues the previous one (tasks 11 and 13).
THEN = ("then", "after that", "afterwards", "following that")
#: The four times of task 14, in order.
TIMES = ("yesterday", "this morning", "this afternoon", "this evening")


@dataclass(frozen=True)
class Belief:
    """What the story last said about a person: ``kind`` "in" (one room), "not" (not in ``rooms[0]``)
    or "either" (one of two rooms), at line ``line``."""

    kind: str
    rooms: tuple[str, ...]
    line: int


def _moved(rng: random.Random, person: str, room: str) -> str:
    return f"{person} {rng.choice(MOVE_VERBS)} the {room}"


def simple_negation(rng: random.Random) -> StoryWriter:
    """Task 9: statements and negations of where people are; yes/no questions."""
    story, beliefs = StoryWriter(), {}
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(2):
            person, room = rng.choice(PEOPLE), rng.choice(ROOMS)
            known = beliefs.get(person)
            kind = rng.choices(("move", "is", "not"), (0.5, 0.2, 0.3))[0]
            if kind == "not":
                if known is not None and known.kind == "in" and rng.random() < 0.5:
                    room, text = known.rooms[0], f"{person} is no longer in the {known.rooms[0]}"
                else:
                    text = f"{person} is {rng.choice(('not', 'no longer'))} in the {room}"
                beliefs[person] = Belief("not", (room,), story.say(text))
            else:
                text = _moved(rng, person, room) if kind == "move" else f"{person} is in the {room}"
                beliefs[person] = Belief("in", (room,), story.say(text))
        person = rng.choice(sorted(beliefs))
        belief = beliefs[person]
        if belief.kind == "not":  # only the negated room has a definite answer
            story.ask(f"is {person} in the {belief.rooms[0]}", "no", [belief.line])
        else:
            here = belief.rooms[0]
            room = here if rng.random() < 0.4 else rng.choice([r for r in ROOMS if r != here])
            story.ask(f"is {person} in the {room}", "yes" if room == here else "no", [belief.line])
    return story


def indefinite_knowledge(rng: random.Random) -> StoryWriter:
    """Task 10: "either ... or ..." sentences; yes / no / maybe questions."""
    story, beliefs = StoryWriter(), {}
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(2):
            person = rng.choice(VISITORS)
            kind = rng.choices(("move", "is", "either"), (0.4, 0.2, 0.4))[0]
            if kind == "either":
                rooms = tuple(rng.sample(PLACES, 2))
                beliefs[person] = Belief("either", rooms, story.say(f"{person} is either in the {rooms[0]} or the {rooms[1]}"))
            else:
                room = rng.choice(PLACES)
                text = _moved(rng, person, room) if kind == "move" else f"{person} is in the {room}"
                beliefs[person] = Belief("in", (room,), story.say(text))
        person = rng.choice(sorted(beliefs))
        belief = beliefs[person]
        if rng.random() < 0.45:
            room = rng.choice(belief.rooms)
            answer = "maybe" if belief.kind == "either" else "yes"
        else:
            room, answer = rng.choice([r for r in PLACES if r not in belief.rooms]), "no"
        story.ask(f"is {person} in the {room}", answer, [belief.line])
    return story


def basic_coreference(rng: random.Random) -> StoryWriter:
    """Task 11: a person moves, then "he"/"she" moves again; where is someone?"""
    story, last = StoryWriter(), {}
    while story.n_questions < QUESTIONS_PER_STORY:
        person, (before, room) = rng.choice(PEOPLE), rng.sample(ROOMS, 2)
        first = story.say(_moved(rng, person, before))
        second = story.say(f"{rng.choice(THEN)} {_moved(rng, PRONOUN[person], room)}")
        last[person] = (room, [first, second])
        asked = rng.choice(sorted(last))
        story.ask(f"where is {asked}", *last[asked])
    return story


def conjunction(rng: random.Random) -> StoryWriter:
    """Task 12: two people move together ("Mary and John went to ..."); where is someone?"""
    story, last = StoryWriter(), {}
    while story.n_questions < QUESTIONS_PER_STORY:
        for _ in range(2):
            pair, room = rng.sample(PEOPLE, 2), rng.choice(ROOMS)
            line = story.say(_moved(rng, f"{pair[0]} and {pair[1]}", room))
            last.update({p: (room, [line]) for p in pair})
        asked = rng.choice(sorted(last))
        story.ask(f"where is {asked}", *last[asked])
    return story


def compound_coreference(rng: random.Random) -> StoryWriter:
    """Task 13: two people move together, then "they" move again; where is one of them?"""
    story, last = StoryWriter(), {}
    while story.n_questions < QUESTIONS_PER_STORY:
        pair, (before, room) = rng.sample(PEOPLE, 2), rng.sample(ROOMS, 2)
        first = story.say(_moved(rng, f"{pair[0]} and {pair[1]}", before))
        second = story.say(f"{rng.choice(THEN)} {_moved(rng, 'they', room)}")
        last.update({p: (room, [first, second]) for p in pair})
        asked = rng.choice(sorted(last))
        story.ask(f"where is {asked}", *last[asked])
    return story


def time_reasoning(rng: random.Random) -> StoryWriter:
    """Task 14: moves at four times of day, told out of order; where was someone before a place?

    Each person visits four different places, so "before the school" names one time.
    """
    story = StoryWriter()
    plans = {p: rng.sample(PLACES, len(TIMES)) for p in VISITORS}
    # each person's day is told in order, except that yesterday and this morning may come swapped
    pending = {p: ([1, 0] if rng.random() < 0.5 else [0, 1]) + [2, 3] for p in VISITORS}
    told: dict[str, dict[int, int]] = {p: {} for p in VISITORS}
    while story.n_questions < QUESTIONS_PER_STORY:
        waiting = [p for p in VISITORS if pending[p]]
        if waiting:
            person = rng.choice(waiting)
            t = pending[person].pop(0)
            time, move = TIMES[t], _moved(rng, person, plans[person][t])
            told[person][t] = story.say(f"{time} {move}" if rng.random() < 0.5 else f"{move} {time}")
        askable = [(p, t) for p in VISITORS for t in told[p] if t > 0 and t - 1 in told[p]]
        if askable and (not waiting or rng.random() < 0.5):
            p, t = rng.choice(askable)
            story.ask(f"where was {p} before the {plans[p][t]}", plans[p][t - 1], [told[p][t], told[p][t - 1]])
    return story
