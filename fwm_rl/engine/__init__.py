"""The run engine: what the three trainers (A2C, catbAbI, LM) share, in one place.

* :mod:`~fwm_rl.engine.config`: configs stored in checkpoints, one spelling of the shared knobs
  (``lr``, ``steps``, ``eval_every``, ``log_every``, ``time_budget``, ``seed``, ``device``) and the
  command-line options generated from them;
* :mod:`~fwm_rl.engine.training`: device, seeds, mixed precision, the non-finite loss guard;
* :mod:`~fwm_rl.engine.loop`: the training loop (steps, log and validation cadence, time budget);
* :mod:`~fwm_rl.engine.step`: one optimizer step (backward, combine over processes, check, clip, step);
* :mod:`~fwm_rl.engine.checkpoints`: one checkpoint schema (``make_checkpoint``), atomic writes, format-1 upgrade;
* :mod:`~fwm_rl.engine.folders`: the run-folder policy (no silent overwrite, one writer at a time);
* :mod:`~fwm_rl.engine.metrics`: ``metrics.csv`` + TensorBoard, progress bars, figures, learning curves from ``metrics.csv``;
* :mod:`~fwm_rl.engine.records`: the command and machine a run's results came from.

Work across processes (``torchrun``) lives in :mod:`fwm_rl.distributed`.
"""

from fwm_rl.engine.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KINDS,
    atomic_save,
    capture_rng,
    check_checkpoint,
    checkpoint_kind,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    read_checkpoint,
    restore_rng,
)
from fwm_rl.engine.config import SavedConfig, add_options, field_docs, flag, given, resumable_flags
from fwm_rl.engine.folders import BEST, CHECKPOINT, LOCK, RESULTS, RunExistsError, checkpoint_file, claim_run_folder, run_lock
from fwm_rl.engine.loop import LoopTask, train_loop
from fwm_rl.engine.metrics import RunLogger, plot_curves, progress, read_curve, save_figure
from fwm_rl.engine.records import code_revision, machine_description, run_record
from fwm_rl.engine.step import apply_gradients, gradient_step, reduce_gradients
from fwm_rl.engine.training import AMP_MODES, NonFiniteLossError, autocast, check_finite, resolve_device, set_seed

__all__ = [
    "AMP_MODES",
    "BEST",
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KINDS",
    "LOCK",
    "LoopTask",
    "RESULTS",
    "NonFiniteLossError",
    "RunExistsError",
    "RunLogger",
    "SavedConfig",
    "add_options",
    "apply_gradients",
    "atomic_save",
    "capture_rng",
    "autocast",
    "check_checkpoint",
    "check_finite",
    "checkpoint_kind",
    "checkpoint_file",
    "claim_run_folder",
    "code_revision",
    "field_docs",
    "flag",
    "given",
    "gradient_step",
    "load_checkpoint",
    "load_weights",
    "machine_description",
    "make_checkpoint",
    "plot_curves",
    "progress",
    "read_checkpoint",
    "read_curve",
    "reduce_gradients",
    "resolve_device",
    "restore_rng",
    "resumable_flags",
    "run_lock",
    "run_record",
    "save_figure",
    "set_seed",
    "train_loop",
]
