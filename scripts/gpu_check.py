"""The prepared GPU check: everything that needs a CUDA device, in one short run (at most ~8 minutes).

    python scripts/gpu_check.py --out gpu-check               # on a CUDA machine: all parts, table + JSON
    python scripts/gpu_check.py --list                        # the parts and their time limits
    python scripts/gpu_check.py --only a2c lm --out DIR       # some parts
    python scripts/gpu_check.py --authors-repo PATH --out DIR # bench-a2c also times the authors' loop

Parts, in this order (each in its own process, with its own time limit, so that one failure or hang
does not eat the others; the whole run stops starting parts when ``--budget`` seconds are spent):

* ``pytest-gpu``: ``pytest -m gpu`` (the tests that need CUDA);
* ``a2c``, ``babi``, ``babi-bf16``, ``lm``, ``lm-bf16``: each trainer for a few steps on the device at
  the paper's sizes (A2C: the ``paper-fwm`` agent with its 600 environments on the device; catbAbI: the
  paper-size FWM on generated stories; LM: the paper's PTB-size AWD-LSTM + FWM on the generated
  corpus; ``-bf16``: ``amp="bf16"``), with agent-steps/s or training tokens/s and peak GPU memory;
* ``bench-fwm`` and ``bench-a2c``: ``scripts/bench_fwm.py`` and ``scripts/bench_a2c_speed.py`` on the
  device (fast vs step form vs LSTM; ours vs the authors' loop with ``--authors-repo``);
* ``torchrun-a2c``, ``torchrun-babi``, ``torchrun-lm``: the trainer parts under
  ``torchrun --standalone --nproc_per_node=1``, which joins an ``nccl`` process group on CUDA.

On a machine without CUDA it says so in one line and exits 2. ``--device cpu`` rehearses the script
itself on the CPU with small models and few steps (no GPU figures; the benchmarks run as on a GPU). Run from the repository root; the project need not be
installed (its folder is put on ``PYTHONPATH`` of every part).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Steps of the trainer parts: enough to pass compilation and warm-up and to time a steady state.
A2C_EPISODES = 60
BABI_STEPS = 20
LM_STEPS = 20


@dataclass(frozen=True)
class Part:
    name: str
    limit: float  # seconds
    what: str


PARTS = (
    Part("pytest-gpu", 150, "pytest -m gpu: the GPU tests"),
    Part("a2c", 75, f"A2C trainer, paper-fwm agent, {A2C_EPISODES} episodes, env on the device (agent-steps/s)"),
    Part("babi", 45, f"catbAbI trainer, paper-size FWM, QA mode, {BABI_STEPS} steps (training tokens/s)"),
    Part("babi-bf16", 45, "the same with --amp bf16"),
    Part("lm", 60, f"LM trainer, paper PTB-size AWD-LSTM + FWM, {LM_STEPS} steps (training tokens/s)"),
    Part("lm-bf16", 60, "the same with --amp bf16"),
    Part("bench-fwm", 75, "scripts/bench_fwm.py: fast vs step form vs LSTM, forward + backward"),
    Part("bench-a2c", 100, "scripts/bench_a2c_speed.py: training episodes, ours (and the authors' loop with --authors-repo)"),
    Part("torchrun-a2c", 60, "the a2c part under torchrun --nproc_per_node=1 (nccl on CUDA)"),
    Part("torchrun-babi", 45, "the babi part under torchrun --nproc_per_node=1"),
    Part("torchrun-lm", 60, "the lm part under torchrun --nproc_per_node=1"),
)
#: A rehearsal on the CPU (``--device cpu``) gives each part this many times its limit.
CPU_LIMIT_FACTOR = 4


@dataclass
class Outcome:
    part: str
    status: str  # ok | failed | timed out | skipped
    seconds: float
    figure: str  # the part's headline number, with its unit
    peak_mib: float | None  # peak GPU memory allocated by the part (trainer parts)
    note: str  # the end of the output when something went wrong, or the part's own summary


# ------------------------------------------------------------------------------ the trainer parts
def _peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _a2c(device: str, out: Path) -> dict:
    from fwm_rl.agents.training import preset_configs, train_run

    episodes = A2C_EPISODES if device != "cpu" else 4
    small = {} if device != "cpu" else {"n_envs": 32}
    cfg = preset_configs(
        "paper-fwm", steps=episodes, eval_every=episodes // 2, device=device, final_episodes_per_graph=1, **small
    )[0]
    summary = train_run(cfg, out / "a2c", show_progress=False)
    return {
        "figure": f"{summary.agent_steps_per_second:,.0f} agent-steps/s",
        "value": summary.agent_steps_per_second,
        "note": f"{summary.episodes} episodes x {cfg.n_envs} agents, test reward {summary.test.mean:.1f}",
    }


def _babi(device: str, out: Path, amp: str) -> dict:
    from fwm_rl.babi.catbabi import DataSpec
    from fwm_rl.babi.config import preset_configs
    from fwm_rl.babi.trainer import CatbAbITrainer

    steps, size = (BABI_STEPS, "paper") if device != "cpu" else (4, "small")
    model, config = preset_configs(
        size, "fwm", steps=steps, eval_every=steps, eval_segments=2, amp=amp, device=device, tensorboard=False
    )
    trainer = CatbAbITrainer(model, config, DataSpec(generated=(100, 10, 10)), out / f"babi-{amp}")
    tokens_per_s = trainer.throughput(steps - 2, warmup=2)
    return {
        "figure": f"{tokens_per_s:,.0f} tokens/s",
        "value": tokens_per_s,
        "note": f"batch {config.batch_size} x {config.bptt} tokens, {trainer.model.num_parameters():,} parameters, amp {amp}",
    }


def _lm(device: str, out: Path, amp: str) -> dict:
    from fwm_rl.lm.config import LMConfig, LMModelConfig
    from fwm_rl.lm.corpus import load_data
    from fwm_rl.lm.trainer import LMTrainer

    corpus = load_data(None)
    steps, sizes = (
        (LM_STEPS, {}) if device != "cpu" else (4, {"embedding_size": 32, "hidden_size": 64, "n_layers": 2, "d_fwm": 8})
    )
    config = LMConfig(steps=steps, log_every=2, device=device, tensorboard=False, tune_temperature=False, amp=amp)
    trainer = LMTrainer(corpus, LMModelConfig(vocab_size=len(corpus.vocab), memory="fwm", **sizes), config, out / f"lm-{amp}")
    summary = trainer.train(show_progress=False)
    params = sum(p.numel() for p in trainer.model.parameters())
    return {
        "figure": f"{summary.tokens_per_second:,.0f} tokens/s",
        "value": summary.tokens_per_second,
        "note": f"batch {config.batch_size} x ~{config.bptt} tokens, {params:,} parameters, amp {amp}, valid ppl {summary.best_valid_perplexity:.1f}",
    }


def run_worker(part: str, device: str, result_file: Path) -> int:
    """Run one trainer part in this process (also under torchrun) and write its result as JSON (rank 0)."""
    import torch

    from fwm_rl.engine.distributed import finish_distributed, init_distributed

    ctx = init_distributed(device)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    name = part.removeprefix("torchrun-")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if ctx.distributed:  # every process must write into the same run folder: rank 0's
            from fwm_rl.engine.distributed import broadcast_object

            out = Path(broadcast_object(tmp, ctx))
        start = time.perf_counter()
        if name == "a2c":
            result = _a2c(str(ctx.device), out)
        elif name.startswith("babi"):
            result = _babi(str(ctx.device), out, "bf16" if name.endswith("bf16") else "none")
        else:
            result = _lm(str(ctx.device), out, "bf16" if name.endswith("bf16") else "none")
        result["seconds"] = time.perf_counter() - start
        result["peak_mib"] = _peak_mib(ctx.device)
        result["backend"] = ctx.backend if ctx.distributed else None
        if ctx.is_main:
            result_file.write_text(json.dumps(result))
        finish_distributed()
    return 0


# ----------------------------------------------------------------------------------------- driver
def _command(part: str, device: str, result_file: Path, authors_repo: Path | None) -> list[str]:
    py = sys.executable
    if part == "pytest-gpu":
        return [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")]
    if part == "bench-fwm":
        return [py, str(ROOT / "scripts" / "bench_fwm.py"), "--device", device, "--repeats", "5"]
    if part == "bench-a2c":
        extra = ["--authors-repo", str(authors_repo)] if authors_repo else []
        return [py, str(ROOT / "scripts" / "bench_a2c_speed.py"), "--device", device, "--rounds", "2", *extra]
    worker = [str(Path(__file__).resolve()), "--worker", part, "--device", device, "--result-file", str(result_file)]
    if part.startswith("torchrun-"):
        return [py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", *worker]
    return [py, *worker]


def _tail(text: str, lines: int = 6) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _figure_from_output(part: str, output: str) -> str:
    if part == "pytest-gpu":
        found = re.findall(r"(\d+ (?:passed|failed|skipped|errors?|deselected))", output)
        return ", ".join(found) or "no summary"
    if part == "bench-fwm":
        fast = re.findall(r"\| ([^|]+) \| FWM fast \| [\d.]+ \| [\d,]+ \| ([\d.]+x) faster", output)
        return "; ".join(f"{name.split(' (')[0]} fast {ratio} vs step" for name, ratio in fast) or "no table"
    if part == "bench-a2c":
        rows = re.findall(r"^\| (FWM[^|]*|LSTM[^|]*) \| ([^|]+) \| ([\d.]+) \|", output, flags=re.M)
        return (
            "; ".join(f"{agent.strip()} {loop.strip().split(' (')[0]} {sec} s/episode" for agent, loop, sec in rows)
            or "no table"
        )
    return ""


def _stop(proc: subprocess.Popen) -> str:
    """Stop a part that ran over its limit and return what it printed. SIGTERM first: torchrun
    passes it on to its workers, which run in sessions of their own; then SIGKILL for the rest."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.communicate(timeout=wait)[0]
        except subprocess.TimeoutExpired:
            continue
    proc.stdout.close()  # a worker that escaped still holds the pipe: stop reading it
    return ""


def run_part(part: Part, device: str, limit: float, authors_repo: Path | None) -> Outcome:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        start = time.perf_counter()
        # A session of its own, so that a part running over its limit is stopped with all its
        # processes (torchrun's workers, the benchmarks' pools).
        proc = subprocess.Popen(
            _command(part.name, device, result_file, authors_repo),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            output = _stop(proc)
            return Outcome(
                part.name, "timed out", time.perf_counter() - start, "", None, f"after {limit:.0f} s: {_tail(output)}"
            )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            return Outcome(
                part.name,
                "failed",
                seconds,
                _figure_from_output(part.name, output),
                None,
                f"exit {proc.returncode}: {_tail(output)}",
            )
        if result_file.exists():  # a trainer part
            result = json.loads(result_file.read_text())
            note = result["note"] + (f", backend {result['backend']}" if result.get("backend") else "")
            return Outcome(part.name, "ok", seconds, result["figure"], result["peak_mib"], note)
        return Outcome(part.name, "ok", seconds, _figure_from_output(part.name, output), None, "")


def _table(outcomes: list[Outcome]) -> str:
    lines = ["| part | status | seconds | figure | peak GPU MiB | note |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        peak = "" if o.peak_mib is None else f"{o.peak_mib:,.0f}"
        note = o.note.replace("|", "/")
        lines.append(f"| {o.part} | {o.status} | {o.seconds:.0f} | {o.figure} | {peak} | {note} |")
    return "\n".join(lines)


def _machine(device: str) -> dict:
    import platform

    import torch

    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    if device.startswith("cuda"):
        info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda, gpus=torch.cuda.device_count())
    return info


def _missing_packages() -> list[str]:
    import importlib.util

    needed = ("torch", "numpy", "gymnasium", "stable_baselines3", "matplotlib", "networkx", "tqdm", "tensorboard", "pytest")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json and gpu_check.md (default: print only)")
    parser.add_argument("--list", action="store_true", help="print the parts and their time limits, then exit")
    parser.add_argument("--only", nargs="+", metavar="PART", help="run only these parts (see --list)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cuda:N; cpu rehearses the script without a GPU")
    parser.add_argument(
        "--budget",
        type=float,
        default=470.0,
        help="seconds for the whole run; parts that would start later are skipped (default 470)",
    )
    parser.add_argument("--authors-repo", type=Path, help="checkout of ischlag/Fast-Weight-Memory-public for bench-a2c")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one trainer part in this process
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args.worker, args.device, args.result_file)
    if args.list:
        for part in PARTS:
            print(f"{part.name:<15} {part.limit:>4.0f} s  {part.what}")
        return 0
    names = [p.name for p in PARTS]
    unknown = [name for name in args.only or () if name not in names]
    if unknown:
        print(f"gpu_check.py: error: unknown part(s) {', '.join(unknown)}; choose from {', '.join(names)}", file=sys.stderr)
        return 2
    if not args.budget > 0:
        print(f"gpu_check.py: error: --budget must be positive seconds, got {args.budget}", file=sys.stderr)
        return 2
    missing = _missing_packages()
    if missing:
        print(
            f"gpu_check.py: error: missing Python packages {', '.join(missing)}: install them (or carry their wheels, README: Development)",
            file=sys.stderr,
        )
        return 2
    import torch

    if args.device != "cpu":
        if not args.device.startswith("cuda"):
            print(f"gpu_check.py: error: --device must be cuda, cuda:N or cpu, got {args.device!r}", file=sys.stderr)
            return 2
        if not torch.cuda.is_available():
            print(
                "gpu_check.py: no CUDA device on this machine (torch.cuda.is_available() is False): nothing to check; "
                "run it on a GPU machine (or --device cpu to rehearse)",
                file=sys.stderr,
            )
            return 2
    if args.authors_repo is not None and not (args.authors_repo / "metaRL" / "train_agent.py").exists():
        print(
            f"gpu_check.py: error: {args.authors_repo} is not a checkout of ischlag/Fast-Weight-Memory-public (no metaRL/train_agent.py)",
            file=sys.stderr,
        )
        return 2
    machine = _machine(args.device)
    print(
        f"gpu check on {machine.get('gpu', args.device)} (torch {machine['torch']}, CUDA {machine.get('cuda')}), budget {args.budget:.0f} s",
        flush=True,
    )
    outcomes, start = [], time.perf_counter()
    for part in PARTS:
        if args.only and part.name not in args.only:
            continue
        left = args.budget - (time.perf_counter() - start)
        if left < 15:
            outcomes.append(Outcome(part.name, "skipped", 0.0, "", None, f"the run's budget of {args.budget:.0f} s was spent"))
        else:
            limit = part.limit * (1 if args.device != "cpu" else CPU_LIMIT_FACTOR)
            outcomes.append(run_part(part, args.device, min(limit, left), args.authors_repo))
        o = outcomes[-1]
        print(f"  {o.part:<15} {o.status:<9} {o.seconds:6.1f} s  {o.figure}", flush=True)
    table = _table(outcomes)
    total = time.perf_counter() - start
    print(f"\n{table}\n\n{sum(o.status == 'ok' for o in outcomes)} of {len(outcomes)} parts ok in {total:.0f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(
            json.dumps({"machine": machine, "seconds": total, "parts": [asdict(o) for o in outcomes]}, indent=2) + "\n"
        )
        (args.out / "gpu_check.md").write_text(
            f"gpu check, {machine['date']}, {machine.get('gpu', args.device)}, torch {machine['torch']}\n\n{table}\n"
        )
        print(f"wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    return 0 if all(o.status == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
