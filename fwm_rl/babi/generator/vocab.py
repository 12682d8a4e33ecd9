"""The words of the generated stories, chosen to match the vocabulary of the official bAbI v1.2 tasks."""

from __future__ import annotations

#: The people of tasks 1-3, 6-9, 11-13 and their pronouns (task 11 coreference).
PEOPLE = ("John", "Mary", "Sandra", "Daniel")
PRONOUN = {"John": "he", "Daniel": "he", "Mary": "she", "Sandra": "she"}
#: The people of task 5 (three-argument relations).
GIVERS = ("Bill", "Fred", "Jeff", "Mary")
#: The people of tasks 10 and 14 (indefinite knowledge, time reasoning).
VISITORS = ("Bill", "Fred", "Julie", "Mary")

#: The rooms of the house (tasks 1-9, 11-13, 19 and the map of task 4).
ROOMS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
#: The places of tasks 10 and 14.
PLACES = ("bedroom", "cinema", "kitchen", "office", "park", "school")
#: Objects that can be picked up, dropped and given.
OBJECTS = ("apple", "football", "milk")

MOVE_VERBS = ("went to", "journeyed to", "travelled to", "moved to", "went back to")
PICK_VERBS = ("got", "grabbed", "picked up", "took")
DROP_VERBS = ("dropped", "left", "discarded", "put down")
GIVE_VERBS = ("gave", "handed", "passed")

#: Compass directions: the word, its one-letter answer form (task 19) and its grid step (x east, y north).
DIRECTIONS = {"north": ("n", (0, 1)), "south": ("s", (0, -1)), "east": ("e", (1, 0)), "west": ("w", (-1, 0))}
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}

#: Count words of task 7 ("none" for zero, as in the official answers).
COUNT_WORDS = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
