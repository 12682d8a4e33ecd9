"""Tiny data for the tests of several packages: bAbI files in the official format (catbAbI) and template-sentence
corpora (the LM), and the folder of the shared data sets (tests that use it skip where it is absent)."""

from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path

from fwm_rl.babi import cli as babi_cli
from fwm_rl.lm.config import LMConfig, LMModelConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_BABI = SHARED / "babi" / "tasks_1-20_v1-2_en-subset.tar.gz"

PEOPLE = ("Mary", "John", "Sandra", "Daniel")
ROOMS = ("kitchen", "garden", "office", "hallway", "bathroom")


ADJECTIVES, ANIMALS, VERBS, PLACES = ("big", "small", "red", "blue"), ("cat", "dog"), ("sat", "ran"), ("mat", "park")
WORDS = ["the", "on", "a", *ADJECTIVES, *ANIMALS, *VERBS, *PLACES]


def story_file(rng: random.Random, n_stories: int) -> str:
    """``n_stories`` task-1-like stories in the official format (3 questions each)."""
    lines = []
    for _ in range(n_stories):
        where, i = {}, 0
        for _ in range(3):
            for _ in range(2):
                person, place = rng.choice(PEOPLE), rng.choice(ROOMS)
                i += 1
                where[person] = (place, i)
                lines.append(f"{i} {person} went to the {place}.")
            person = rng.choice(sorted(where))
            i += 1
            lines.append(f"{i} Where is {person}?\t{where[person][0]}\t{where[person][1]}")
    return "\n".join(lines) + "\n"


def write_variant(root: Path, n=(30, 4, 4), tasks=(1, 2), variant="en-valid", skip=()) -> Path:
    folder = root / "tasks_1-20_v1-2" / variant
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for task in tasks:
        for split, k in zip(("train", "valid", "test"), n):
            name = f"qa{task}_{split}.txt" if variant.startswith("en-valid") else f"qa{task}_some-task_{split}.txt"
            if (task, split) in skip or (split == "valid" and not variant.startswith("en-valid")):
                continue
            (folder / name).write_text(story_file(rng, k))
    return folder


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    babi_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def write_corpus(folder: Path, lines: dict[str, int] | None = None, seed: int = 0, layout: str = "ptb") -> Path:
    """A tiny corpus of template sentences ("the big cat sat on a mat"): learnable, all words in train."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (lines or {"train": 120, "valid": 20, "test": 25}).items():
        text = "".join(
            f" the {rng.choice(ADJECTIVES)} {rng.choice(ANIMALS)} {rng.choice(VERBS)} on a {rng.choice(PLACES)} \n"
            + ("\n" if rng.random() < 0.1 else "")  # some empty lines: a lone <eos>, as in WikiText
            for _ in range(n)
        )
        if layout == "ptb":
            (folder / f"{split}.txt").write_text(text)
        else:  # WikiText-2 names, gzipped as in the shared data
            with gzip.open(folder / f"wiki.{split}.tokens.gz", "wt") as fh:
                fh.write(text)
    return folder


def tiny_config(vocab_size: int, memory: str = "lstm", **kw) -> LMModelConfig:
    return LMModelConfig(vocab_size, memory=memory, embedding_size=12, hidden_size=16, n_layers=2, d_fwm=4, n_reads=2, **kw)


def tiny_train(**kw) -> LMConfig:
    base = dict(
        batch_size=4,
        bptt=6,
        steps=8,
        eval_every=4,
        log_every=2,
        tensorboard=False,
        device="cpu",
        tune_temperature=False,
        seed=3,
    )
    return LMConfig(**{**base, **kw})
