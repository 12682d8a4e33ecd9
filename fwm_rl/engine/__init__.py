"""The run engine: what the three trainers (A2C, catbAbI, LM) share, in one place.

* :mod:`~fwm_rl.engine.config`: configs stored in checkpoints, one spelling of the shared knobs
  (``lr``, ``steps``, ``eval_every``, ``log_every``, ``time_budget``, ``seed``, ``device``) and the
  command-line options generated from them;
* :mod:`~fwm_rl.engine.training`: device, seeds, mixed precision, the non-finite loss guard;
* :mod:`~fwm_rl.engine.loop`: the training loop (steps, log and validation cadence, time budget);
* :mod:`~fwm_rl.engine.step`: one optimizer step (backward, combine over processes, check, clip, step);
* :mod:`~fwm_rl.engine.checkpoints`: one checkpoint schema (``make_checkpoint``), atomic writes, ``weights_only`` reads
  (older pickled files only with ``trusted_checkpoints``), format 1 and 2 upgrade;
* :mod:`~fwm_rl.engine.folders`: the run-folder policy (no silent overwrite, one writer at a time);
* :mod:`~fwm_rl.engine.metrics`: ``metrics.csv`` + TensorBoard, progress bars, figures, learning curves from ``metrics.csv``;
* :mod:`~fwm_rl.engine.records`: the command and machine a run's results came from.

Work across processes (``torchrun``) lives in :mod:`fwm_rl.engine.distributed`.
"""

from fwm_rl.engine.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KINDS,
    UntrustedCheckpointError,
    atomic_save,
    capture_rng,
    check_checkpoint,
    checkpoint_kind,
    load_checkpoint,
    load_weights,
    make_checkpoint,
    read_checkpoint,
    restore_rng,
    trusted_checkpoints,
)
from fwm_rl.engine.config import (
    Preset,
    SavedConfig,
    add_device_option,
    add_options,
    add_run_options,
    add_trust_option,
    field_docs,
    flag,
    given,
    resumable_flags,
    resume_folder,
    resume_options,
)
from fwm_rl.engine.folders import (
    BEST,
    CHECKPOINT,
    LOCK,
    MARKER,
    RESULTS,
    RunClaim,
    RunExistsError,
    checkpoint_file,
    claimed_run_folder,
    older_run_problem,
    run_lock,
)
from fwm_rl.engine.loop import LoopTask, RunFinished, finished_run, train_loop
from fwm_rl.engine.metrics import RunLogger, plot_curves, progress, read_curve, read_metrics, save_figure
from fwm_rl.engine.records import code_revision, machine_description, recorded_results, run_record
from fwm_rl.engine.step import apply_gradients, gradient_step, reduce_gradients
from fwm_rl.engine.training import AMP_MODES, NonFiniteLossError, autocast, check_finite, resolve_device, set_seed

__all__ = [
    "AMP_MODES",
    "BEST",
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KINDS",
    "LOCK",
    "MARKER",
    "LoopTask",
    "RESULTS",
    "NonFiniteLossError",
    "RunClaim",
    "RunExistsError",
    "RunFinished",
    "RunLogger",
    "UntrustedCheckpointError",
    "Preset",
    "SavedConfig",
    "add_device_option",
    "add_options",
    "add_run_options",
    "add_trust_option",
    "apply_gradients",
    "atomic_save",
    "capture_rng",
    "autocast",
    "check_checkpoint",
    "check_finite",
    "checkpoint_kind",
    "checkpoint_file",
    "claimed_run_folder",
    "code_revision",
    "field_docs",
    "finished_run",
    "flag",
    "given",
    "gradient_step",
    "load_checkpoint",
    "load_weights",
    "machine_description",
    "make_checkpoint",
    "older_run_problem",
    "plot_curves",
    "progress",
    "read_checkpoint",
    "read_curve",
    "read_metrics",
    "recorded_results",
    "reduce_gradients",
    "resolve_device",
    "restore_rng",
    "resumable_flags",
    "resume_folder",
    "resume_options",
    "run_lock",
    "run_record",
    "save_figure",
    "set_seed",
    "train_loop",
    "trusted_checkpoints",
]
