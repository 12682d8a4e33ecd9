"""Trained catbAbI models shipped inside the package: plain weights, vocabulary and configs, nothing downloaded.

Each model is two files in ``fwm_rl/babi/weights/``: ``NAME.pt``, the :class:`~fwm_rl.babi.models.CatbAbIModel`'s
``state_dict`` (float32 tensors only, read with ``torch.load(..., weights_only=True)``), and ``NAME.json``, its
:class:`PretrainedRecord`: model and training configs, vocabulary, the data it was trained on, how it was trained
and what it reached on test under the paper's protocol (appendix D: the lowest-validation-loss checkpoint read
at batch size one). :func:`load_pretrained` returns what :func:`load_model` returns for a
run folder, so ``fwm-rl babi eval``, ``explain`` and ``answer`` take either (``--pretrained NAME`` or a path).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fwm_rl.babi.catbabi import DataSpec, Vocabulary
from fwm_rl.babi.config import CatbAbIConfig, CatbAbIModelConfig
from fwm_rl.babi.models import CatbAbIModel
from fwm_rl.babi.trainer import _data_spec, _load_run_model
from fwm_rl.engine import BEST, RESULTS, load_weights, read_checkpoint, resolve_device

__all__ = ["WEIGHTS", "PretrainedRecord", "export_pretrained", "load_model", "load_pretrained", "pretrained_records"]

#: Folder of the shipped weights and records.
WEIGHTS = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class PretrainedRecord:
    """How a shipped catbAbI model was trained and what it reached (accuracies are answer accuracies in [0, 1])."""

    name: str
    model: str  # fwm | lstm
    mode: str  # qa | lm (the training loss)
    step: int  # training step of the shipped weights (the lowest validation loss)
    steps: int  # training steps of the run
    train_seconds: float  # training time of the run
    seed: int
    data: str  # what it was trained on (DataSpec.describe)
    test_accuracy: float  # the shipped weights on test at batch size ``test_batch_size``
    test_per_task: dict[str, float]  # task id -> test accuracy
    test_batch_size: int
    command: str  # the command that trained it
    machine: str
    model_config: dict[str, Any] = field(repr=False)
    train_config: dict[str, Any] = field(repr=False)
    data_spec: dict[str, Any] = field(repr=False)
    vocabulary: list[str] = field(repr=False)  # word of each index
    code: str = ""  # the code revision that trained it (e.g. "fwm-rl 0.1.0, git abc123")


def pretrained_records(folder: str | Path | None = None) -> dict[str, PretrainedRecord]:
    """Name -> record of every model shipped in ``folder`` (default :data:`WEIGHTS`)."""
    folder = Path(WEIGHTS if folder is None else folder)
    return {path.stem: PretrainedRecord(**json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))}


def load_pretrained(
    name: str,
    device: str | torch.device = "cpu",
    folder: str | Path | None = None,
) -> tuple[CatbAbIModel, Vocabulary, CatbAbIConfig, DataSpec]:
    """The shipped model ``name``: ``(model on device in eval mode, vocabulary, training config, training data spec)``."""
    folder = Path(WEIGHTS if folder is None else folder)
    records = pretrained_records(folder)
    if name not in records:
        shipped = ", ".join(sorted(records)) or "none yet"
        raise ValueError(f"no shipped catbAbI model named {name!r}; shipped: {shipped}")
    record = records[name]
    vocab = Vocabulary(record.vocabulary)
    if vocab.words != record.vocabulary:
        raise ValueError(f"the shipped vocabulary of {name!r} is corrupt")
    model = CatbAbIModel(CatbAbIModelConfig.from_dict(record.model_config), len(vocab))
    load_weights(model, torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True), folder / f"{name}.pt")
    return (
        model.to(resolve_device(device)).eval(),
        vocab,
        CatbAbIConfig.from_dict(record.train_config),
        _data_spec(record.data_spec),
    )


def load_model(
    checkpoint: str | Path | None = None,
    pretrained: str | None = None,
    device: str | torch.device = "auto",
) -> tuple[CatbAbIModel, Vocabulary, CatbAbIConfig, DataSpec]:
    """A run's checkpoint (a run folder or ``.pt``) or a shipped model by name: exactly one of the two."""
    if (checkpoint is None) == (pretrained is None):
        raise ValueError("give a run folder or checkpoint, or --pretrained NAME (one of the two)")
    return _load_run_model(checkpoint, device) if pretrained is None else load_pretrained(pretrained, device)


def export_pretrained(
    run_dir: str | Path,
    name: str,
    command: str,
    machine: str,
    out: str | Path | None = None,
    overwrite: bool = False,
    code: str = "",
) -> PretrainedRecord:
    """Ship a finished run's ``best.pt`` as ``name`` into ``out`` (default :data:`WEIGHTS`), with the test
    figures its run measured under the paper's protocol (``results.json``'s ``test_best_valid``)."""
    run_dir, out = Path(run_dir), Path(WEIGHTS if out is None else out)
    if not overwrite and ((out / f"{name}.pt").exists() or (out / f"{name}.json").exists()):
        raise FileExistsError(f"{out / name}.pt or .json exists; pass overwrite=True to replace it")
    results_path = run_dir / RESULTS
    if not results_path.exists():
        raise FileNotFoundError(
            f"{results_path} is missing: only a finished run (which tested its best checkpoint) can be shipped"
        )
    results = json.loads(results_path.read_text())
    best = results["test_best_valid"]
    ckpt = read_checkpoint(run_dir / BEST, "catbabi")
    configs = ckpt["configs"]
    model, train = CatbAbIModelConfig.from_dict(configs["model"]), CatbAbIConfig.from_dict(configs["train"])
    record = PretrainedRecord(
        name=name, model=model.memory, mode=train.mode, step=int(ckpt["step"]), steps=int(results["step"]),
        train_seconds=float(results["train_seconds"]), seed=train.seed, data=_data_spec(configs["data"]).describe(),
        test_accuracy=float(best["answer_accuracy"]),
        test_per_task={str(task): float(r["accuracy"]) for task, r in best["per_task"].items()},
        test_batch_size=int(best["batch_size"]), command=command, machine=machine, model_config=configs["model"],
        train_config=configs["train"], data_spec=configs["data"], vocabulary=list(ckpt["task"]["vocab"]),
        code=code or results.get("record", {}).get("code", ""),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().float().cpu().clone() for k, v in ckpt["model"].items()}, out / f"{name}.pt")
    (out / f"{name}.json").write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record
