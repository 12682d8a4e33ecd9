"""bAbI task 20, agent's motivations: a feeling sends a person to a room to get an object.

"Sumit is tired." Where will sumit go? bedroom. "Sumit went to the bedroom." Why did sumit go to
the bedroom? tired. "Sumit grabbed the pajamas there." Why did sumit get the pajamas? tired. Every
answer is supported by the sentence telling the feeling.
"""

from __future__ import annotations

import random

from fwm_rl.babi.generator.story import StoryWriter
from fwm_rl.babi.generator.vocab import MOVE_VERBS, PICK_VERBS

__all__ = ["agents_motivations"]

AGENTS = ("Sumit", "Yann", "Jason", "Antoine")
#: feeling -> (the room it sends one to, the object one gets there)
MOTIVES = {
    "hungry": ("kitchen", "apple"),
    "thirsty": ("kitchen", "milk"),
    "bored": ("garden", "football"),
    "tired": ("bedroom", "pajamas"),
}


def agents_motivations(rng: random.Random) -> StoryWriter:
    """Task 20: the scripts of 2 to 4 agents (feeling, move, get), interleaved at random."""
    story = StoryWriter()
    agents = rng.sample(AGENTS, rng.randint(2, len(AGENTS)))
    # each agent's script: feeling, move, and (mostly) getting the object; started in turn
    steps = {a: ["feel", "go", "get"] if rng.random() < 0.85 else ["feel", "go"] for a in agents}
    feeling, felt_at = {a: rng.choice(list(MOTIVES)) for a in agents}, {}
    started = 1
    while any(steps.values()):
        active = [a for a in agents[:started] if steps[a]]
        if started < len(agents) and (not active or rng.random() < 0.4):
            started += 1
            active = [a for a in agents[:started] if steps[a]]
        agent = rng.choice(active)
        step, name = steps[agent].pop(0), agent.lower()
        room, obj = MOTIVES[feeling[agent]]
        if step == "feel":
            felt_at[agent] = story.say(f"{agent} is {feeling[agent]}")
            story.ask(f"where will {name} go", room, [felt_at[agent]])
        elif step == "go":
            story.say(f"{agent} {rng.choice(MOVE_VERBS)} the {room}")
            story.ask(f"why did {name} go to the {room}", feeling[agent], [felt_at[agent]])
        else:
            story.say(f"{agent} {rng.choice(PICK_VERBS)} the {obj} there")
            story.ask(f"why did {name} get the {obj}", feeling[agent], [felt_at[agent]])
    return story
