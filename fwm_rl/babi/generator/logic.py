"""bAbI tasks of rule reasoning: basic deduction (15), basic induction (16) and size reasoning (18)."""

from __future__ import annotations

import random

from fwm_rl.babi.generator.story import StoryWriter

__all__ = ["basic_deduction", "basic_induction", "size_reasoning"]

#: Task 15: animals (singular, plural) and the people who are one of them.
ANIMALS = {"mouse": "mice", "cat": "cats", "sheep": "sheep", "wolf": "wolves"}
PETS = ("Gertrude", "Winona", "Emily", "Jessica")
QUESTIONS_15 = 4
#: Task 16: people, species and colours.
CREATURES = ("Lily", "Bernhard", "Greg", "Julius", "Brian")
SPECIES = ("swan", "lion", "frog", "rhino")
COLOURS = ("white", "gray", "yellow", "green")
#: Task 18: containers and sweets, sized by a hidden order in every story.
THINGS = ("box", "chest", "suitcase", "container", "chocolate", "box of chocolates")
QUESTIONS_18 = 5


def basic_deduction(rng: random.Random) -> StoryWriter:
    """Task 15: "Mice are afraid of wolves. Gertrude is a mouse." What is gertrude afraid of? wolf."""
    story = StoryWriter()
    fears = {a: rng.choice([b for b in ANIMALS if b != a]) for a in ANIMALS}
    kind = {p: rng.choice(list(ANIMALS)) for p in PETS}
    facts = [("fear", a) for a in ANIMALS] + [("kind", p) for p in PETS]
    rng.shuffle(facts)
    line = {}
    for what, who in facts:
        if what == "fear":
            line[who] = story.say(f"{ANIMALS[who]} are afraid of {ANIMALS[fears[who]]}")
        else:
            line[who] = story.say(f"{who} is a {kind[who]}")
    for _ in range(QUESTIONS_15):
        pet = rng.choice(PETS)
        story.ask(f"what is {pet.lower()} afraid of", fears[kind[pet]], [line[pet], line[kind[pet]]])
    return story


def basic_induction(rng: random.Random) -> StoryWriter:
    """Task 16: "Lily is a swan. Lily is white. Greg is a swan." What color is Greg? white.

    Each species has one colour in a story; the one asked about has its colour told by exactly one
    other member of the species, and the person asked about has no colour sentence.
    """
    story = StoryWriter()
    colour = {s: rng.choice(COLOURS) for s in SPECIES}
    target, witness, *others = rng.sample(CREATURES, len(CREATURES))
    species = {target: rng.choice(SPECIES)}
    species[witness] = species[target]
    species.update({p: rng.choice([s for s in SPECIES if s != species[target]]) for p in others})
    facts = [(target, "is")] + [(p, what) for p in (witness, *others) for what in ("is", "colour")]
    # shuffle, keeping each person's species before their colour
    order = sorted(range(len(facts)), key=lambda i: rng.random())
    seen, told = set(), []
    while order:
        i = next(i for i in order if facts[i][1] == "is" or facts[i][0] in seen)
        order.remove(i)
        seen.add(facts[i][0])
        told.append(facts[i])
    line = {}
    for person, what in told:
        text = f"{person} is a {species[person]}" if what == "is" else f"{person} is {colour[species[person]]}"
        line[(person, what)] = story.say(text)
    story.ask(
        f"what color is {target}",
        colour[species[target]],
        [line[(target, "is")], line[(witness, "is")], line[(witness, "colour")]],
    )
    return story


def size_reasoning(rng: random.Random) -> StoryWriter:
    """Task 18: "The box fits inside the chest. The chest is bigger than the chocolate." Is the
    chocolate bigger than the box? (yes / no, from two facts chained through a third thing)."""
    story = StoryWriter()
    ranked = rng.sample(THINGS, rng.randint(4, len(THINGS)))  # smallest first
    size = {thing: i for i, thing in enumerate(ranked)}
    smaller_than: dict[tuple[str, str], int] = {}  # (small, big) -> line
    while story.n_questions < QUESTIONS_18:
        small, big = sorted(rng.sample(ranked, 2), key=size.get)
        if rng.random() < 0.5:
            line = story.say(f"the {small} fits inside the {big}")
        else:
            line = story.say(f"the {big} is bigger than the {small}")
        smaller_than[(small, big)] = line
        chains = [(a, m, b) for (a, m) in smaller_than for (m2, b) in smaller_than if m2 == m]
        if not chains:
            continue
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            a, m, b = rng.choice(chains)  # a < m < b
            first, second = rng.sample((a, b), 2)
            bigger = first == b
            question, answer = rng.choice(
                [
                    (f"is the {first} bigger than the {second}", bigger),
                    (f"does the {first} fit in the {second}", not bigger),
                ]
            )
            facts = [smaller_than[(a, m)], smaller_than[(m, b)]]
            story.ask(question, "yes" if answer else "no", facts if first == a else facts[::-1])
            if story.n_questions == QUESTIONS_18:
                break
    return story
