"""The built-in bAbI-style story generator: all 20 tasks of Weston et al. (2015), written for this project.

This is **not** the official bAbI data. Each task is a small simulation written from the task's
definition, told with the official vocabulary (the same people, rooms, objects, verbs and question
forms) and written in the official v1.2 file format, so the reader (:mod:`fwm_rl.babi.reader`) and
catbAbI (:mod:`fwm_rl.babi.catbabi`) take it like the real files. It makes any number of stories from
a seed, deterministically, so catbAbI runs without downloads and can be trained on stories that
never repeat. Its answer sets are those of the official tasks, and every supporting fact is a line
that really proves the answer. It differs from the official data in these ways:

- the statistics differ: story lengths, how often each answer and question form occurs, and the
  order of supporting-fact ids (e.g. task 3 cites the carrier's pick-up, not the object's last event);
- the worlds are kept strictly consistent: people pick up only objects in their room (or not seen
  yet) and give them only to someone in the same room; a person's first action is a move;
- questions the official tasks leave ambiguous are not asked: task 3 asks "before the kitchen" only
  for a room the object entered once, task 14 gives each person four different places, task 5 asks
  "What did Mary give to Fred?" only when she gave him one kind of object;
- tasks 4, 17 and 19 place things on grid cells ("north of" = the neighbouring cell), so every
  relation question has exactly one answer.

=====  ======================  ==================  =======================================
task   name                    module              answers
=====  ======================  ==================  =======================================
1      single-supporting-fact  :mod:`.house`       a room
2      two-supporting-facts    :mod:`.house`       a room
3      three-supporting-facts  :mod:`.house`       a room
4      two-arg-relations       :mod:`.spatial`     a room
5      three-arg-relations     :mod:`.house`       a person or an object
6      yes-no-questions        :mod:`.house`       yes, no
7      counting                :mod:`.house`       none, one, two, three
8      lists-sets              :mod:`.house`       nothing or objects joined by commas
9      simple-negation         :mod:`.knowledge`   yes, no
10     indefinite-knowledge    :mod:`.knowledge`   yes, no, maybe
11     basic-coreference       :mod:`.knowledge`   a room
12     conjunction             :mod:`.knowledge`   a room
13     compound-coreference    :mod:`.knowledge`   a room
14     time-reasoning          :mod:`.knowledge`   a place
15     basic-deduction         :mod:`.logic`       cat, mouse, sheep, wolf
16     basic-induction         :mod:`.logic`       white, gray, yellow, green
17     positional-reasoning    :mod:`.spatial`     yes, no
18     size-reasoning          :mod:`.logic`       yes, no
19     path-finding            :mod:`.spatial`     two of n, s, e, w joined by a comma
20     agents-motivations      :mod:`.motivations` a room or a feeling
=====  ======================  ==================  =======================================
"""

from __future__ import annotations

import random
from collections.abc import Callable

from fwm_rl.babi.generator import house, knowledge, logic, motivations, spatial
from fwm_rl.babi.generator.story import StoryWriter
from fwm_rl.checks import check_int

__all__ = ["TASK_NAMES", "generate_task_text"]

#: Task id -> the official file-name stem (as in bAbI v1.2 ``en/qa{N}_{name}_train.txt``).
TASK_NAMES: dict[int, str] = {
    1: "single-supporting-fact",
    2: "two-supporting-facts",
    3: "three-supporting-facts",
    4: "two-arg-relations",
    5: "three-arg-relations",
    6: "yes-no-questions",
    7: "counting",
    8: "lists-sets",
    9: "simple-negation",
    10: "indefinite-knowledge",
    11: "basic-coreference",
    12: "conjunction",
    13: "compound-coreference",
    14: "time-reasoning",
    15: "basic-deduction",
    16: "basic-induction",
    17: "positional-reasoning",
    18: "size-reasoning",
    19: "path-finding",
    20: "agents-motivations",
}

#: Task id -> the function telling one story of that task from a random generator.
TASKS: dict[int, Callable[[random.Random], StoryWriter]] = {
    1: house.single_supporting_fact,
    2: house.two_supporting_facts,
    3: house.three_supporting_facts,
    4: spatial.two_arg_relations,
    5: house.three_arg_relations,
    6: house.yes_no_questions,
    7: house.counting,
    8: house.lists_sets,
    9: knowledge.simple_negation,
    10: knowledge.indefinite_knowledge,
    11: knowledge.basic_coreference,
    12: knowledge.conjunction,
    13: knowledge.compound_coreference,
    14: knowledge.time_reasoning,
    15: logic.basic_deduction,
    16: logic.basic_induction,
    17: spatial.positional_reasoning,
    18: logic.size_reasoning,
    19: spatial.path_finding,
    20: motivations.agents_motivations,
}


def generate_task_text(task_id: int, n_stories: int, seed: int) -> str:
    """``n_stories`` stories of bAbI task ``task_id`` in the official v1.2 file format.

    Lines are ``N sentence.`` and ``N question?<TAB>answer<TAB>supporting ids``; a line index of 1
    starts a new story; the text ends with a newline (empty for ``n_stories=0``). Deterministic in
    ``(task_id, n_stories, seed)``; the first stories do not depend on ``n_stories``, and different
    tasks or seeds draw from unrelated random streams.
    """
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id not in TASKS:
        raise ValueError(f"bAbI task id must be an integer from 1 to 20, got {task_id!r}")
    check_int("n_stories", n_stories, 0)
    check_int("seed", seed, None)
    rng = random.Random(f"fwm-rl bAbI generator, task {task_id}, seed {seed}")  # str seeds are hashed stably
    tell = TASKS[task_id]
    return "".join(tell(rng).render() for _ in range(n_stories))
