"""Writing generated stories in the layout of the official bAbI v1.2 release."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fwm_rl.babi.generator import TASK_NAMES, generate_task_text
from fwm_rl.checks import check_int

__all__ = ["DEFAULT_STORIES", "write_dataset"]

TASKS_FOLDER = "tasks_1-20_v1-2"
SPLITS = ("train", "valid", "test")
#: Stories per task and split for each variant, sized like the official variant (en / en-10k have no valid files).
DEFAULT_STORIES: dict[str, dict[str, int]] = {
    "en": {"train": 1000, "test": 1000},
    "en-10k": {"train": 10000, "test": 1000},
    "en-valid": {"train": 900, "valid": 100, "test": 1000},
    "en-valid-10k": {"train": 9000, "valid": 1000, "test": 1000},
}


def split_seed(seed: int, split: str) -> int:
    """The generator seed of ``split``: ``3 * seed + index`` of the split, disjoint for every seed and split."""
    return 3 * seed + SPLITS.index(split)


def write_dataset(
    out_dir,
    variant: str = "en-valid-10k",
    n_stories: dict[str, int] | None = None,
    seed: int = 0,
    tasks: Iterable[int] = range(1, 21),
    overwrite: bool = False,
) -> Path:
    """Write generated stories in the official layout and return the variant folder.

    ``out_dir/tasks_1-20_v1-2/<variant>/`` gets ``qa{N}_train.txt``, ``qa{N}_valid.txt`` and
    ``qa{N}_test.txt`` for ``en-valid`` and ``en-valid-10k``, or ``qa{N}_{name}_train.txt`` and
    ``..._test.txt`` for ``en`` and ``en-10k``. ``n_stories`` gives the stories per task for each
    split of the variant (default :data:`DEFAULT_STORIES`); splits use disjoint seeds
    (:func:`split_seed`). Files are written atomically. Existing task files (official bAbI data, say)
    are never replaced unless ``overwrite``.
    """
    if variant not in DEFAULT_STORIES:
        raise ValueError(f"unknown bAbI variant {variant!r}: choose from {', '.join(DEFAULT_STORIES)}")
    splits = tuple(DEFAULT_STORIES[variant])
    counts = dict(DEFAULT_STORIES[variant] if n_stories is None else n_stories)
    if set(counts) != set(splits):
        raise ValueError(
            f"variant {variant} has the splits {', '.join(splits)}: n_stories must give exactly "
            f"those, got {', '.join(counts) or 'none'}"
        )
    for split, n in counts.items():
        check_int(f"n_stories[{split!r}]", n)
    tasks = list(tasks)
    for task in tasks:
        if task not in TASK_NAMES:
            raise ValueError(f"bAbI task ids must be integers from 1 to 20, got {task!r}")
    folder = Path(out_dir) / TASKS_FOLDER / variant

    def task_file(task: int, split: str) -> Path:
        stem = f"qa{task}" if variant.startswith("en-valid") else f"qa{task}_{TASK_NAMES[task]}"
        return folder / f"{stem}_{split}.txt"

    paths = {(task, split): task_file(task, split) for task in tasks for split in splits}
    taken = [path for path in paths.values() if path.exists()]
    if taken and not overwrite:
        raise FileExistsError(
            f"{taken[0]} exists ({len(taken)} of the {len(paths)} task files do): choose another --out, "
            "or pass --overwrite to replace them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    for task in tasks:
        for split in splits:
            path = paths[task, split]
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(generate_task_text(task, counts[split], split_seed(seed, split)), encoding="utf-8")
            os.replace(tmp, path)
    return folder
