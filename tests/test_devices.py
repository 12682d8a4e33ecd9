"""Devices and precision: checkpoints that move between devices, bf16 mixed precision, the prepared
GPU check (scripts/gpu_check.py), and the tests that need CUDA (marker ``gpu``, skipped without it)."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
import torch.serialization
from tiny_data import tiny_config, tiny_train, write_corpus, write_variant

from fwm_rl.agents import pretrained as pretrained_module
from fwm_rl.agents.training import A2CConfig, load_policy, train_run
from fwm_rl.babi import load_model as load_babi_model
from fwm_rl.babi.catbabi import DataSpec, load_catbabi
from fwm_rl.babi.config import CatbAbIConfig, preset_configs
from fwm_rl.babi.trainer import CatbAbITrainer
from fwm_rl.engine import autocast, load_checkpoint
from fwm_rl.lm.corpus import load_corpus
from fwm_rl.lm.trainer import BEST, CHECKPOINT, LMTrainer, load_model
from fwm_rl.memory import FWMLSTM, FastWeightMemory, map_state

ROOT = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------ checkpoints written on a GPU
def as_if_written_on_cuda(path: Path) -> None:
    """Rewrite the checkpoint at ``path`` so that every tensor is recorded as stored on ``cuda:0``,
    as a checkpoint written on a GPU is (the file is otherwise unchanged)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        torch.save(obj, path)


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only side")
def test_rewritten_checkpoint_really_claims_cuda(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "c.pt")
    as_if_written_on_cuda(tmp_path / "c.pt")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(tmp_path / "c.pt", weights_only=True)
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["w"], torch.ones(3))


def test_a2c_checkpoint_from_a_gpu_resumes_and_loads_on_the_cpu(tmp_path):
    cfg = A2CConfig(
        name="fwm",
        hidden_size=8,
        d_fwm=4,
        n_reads=2,
        n_envs=4,
        steps=2,
        eval_every=1,
        final_episodes_per_graph=1,
        device="cpu",
    )
    train_run(cfg, tmp_path / "run", show_progress=False)
    as_if_written_on_cuda(tmp_path / "run" / "checkpoint.pt")
    policy, _, ckpt = load_policy(tmp_path / "run", "cpu")
    assert ckpt["step"] == 2 and all(p.device.type == "cpu" for p in policy.parameters())
    summary = train_run(A2CConfig(**{**cfg.to_dict(), "steps": 3}), tmp_path / "run", resume=True, show_progress=False)
    assert summary.episodes == 3


def test_shipped_weights_are_device_free_and_load_on_the_cpu(tmp_path):
    """Exported weights are CPU tensors (they load anywhere), even from a checkpoint written on a GPU."""
    cfg = A2CConfig(
        name="fwm",
        hidden_size=8,
        d_fwm=4,
        n_reads=2,
        n_envs=4,
        steps=1,
        eval_every=1,
        final_episodes_per_graph=1,
        device="cpu",
    )
    train_run(cfg, tmp_path / "run", show_progress=False)
    as_if_written_on_cuda(tmp_path / "run" / "checkpoint.pt")
    pretrained_module.export_pretrained(
        tmp_path / "run", "tiny", command="pytest", machine="test", eval_episodes_per_graph=1, out=tmp_path / "w"
    )
    weights = torch.load(tmp_path / "w" / "tiny.pt", weights_only=True)  # no map_location needed
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in weights.values())


@pytest.fixture(scope="module")
def babi_variant(tmp_path_factory) -> Path:
    return write_variant(tmp_path_factory.mktemp("babi"))


def _babi_trainer(variant: Path, out, device="cpu", **cfg) -> CatbAbITrainer:
    config = CatbAbIConfig(
        **{
            "batch_size": 4,
            "bptt": 40,
            "steps": 4,
            "eval_every": 2,
            "eval_batch_size": 4,
            "log_every": 1,
            "lr": 3e-3,
            "device": device,
            "tensorboard": False,
            **cfg,
        }
    )
    spec = DataSpec(path=str(variant))
    model, _ = preset_configs("small", "fwm", embedding_size=32, hidden_size=32)
    return CatbAbITrainer(model, config, spec, out, data=load_catbabi(spec))


def test_catbabi_checkpoint_from_a_gpu_resumes_and_loads_on_the_cpu(babi_variant, tmp_path):
    _babi_trainer(babi_variant, tmp_path / "run", steps=2).train()
    as_if_written_on_cuda(tmp_path / "run" / "checkpoint.pt")
    model, vocab, config, _ = load_babi_model(tmp_path / "run", device="cpu")
    assert config.steps == 2 and next(model.parameters()).device.type == "cpu"
    resumed = CatbAbITrainer.resume(tmp_path / "run", device="cpu", steps=4, tensorboard=False)
    assert resumed.step == 2 and all(t.device.type == "cpu" for t in _leaves(resumed.state))
    resumed.train()
    assert resumed.step == 4


def _leaves(state) -> list[torch.Tensor]:
    leaves = []
    map_state(state, lambda t: leaves.append(t) or t)
    return leaves


def test_lm_checkpoint_from_a_gpu_resumes_and_loads_on_the_cpu(tmp_path):
    data = write_corpus(tmp_path / "corpus")
    corpus = load_corpus(data)
    LMTrainer(corpus, tiny_config(len(corpus.vocab), "fwm"), tiny_train(steps=4), tmp_path / "run", data=str(data)).train(
        show_progress=False
    )
    ckpt = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    ckpt["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]  # a GPU run also stores its CUDA generators
    torch.save(ckpt, tmp_path / "run" / CHECKPOINT)
    for name in (CHECKPOINT, BEST):
        as_if_written_on_cuda(tmp_path / "run" / name)
    model, best = load_model(tmp_path / "run" / BEST, "cpu")
    assert best["step"] >= 1 and next(model.parameters()).device.type == "cpu"
    resumed = LMTrainer.resume(tmp_path / "run", device="cpu", steps=6)
    assert resumed.step == 4
    resumed.train(show_progress=False)
    assert resumed.step == 6


# --------------------------------------------------------------------------- mixed precision
def test_memory_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    layer = FWMLSTM(8, 16, d_fwm=4, n_reads=2, residual=True)
    x = torch.randn(12, 3, 8)
    with autocast(torch.device("cpu"), "bf16"):
        out, ((h, c), F) = layer(x)
        h_seq, _ = layer.lstm(x)
        reads, _ = layer.memory(h_seq)
    assert h_seq.dtype == torch.bfloat16  # the slow net ran in bfloat16 ...
    assert F.dtype == reads.dtype == out.dtype == torch.float32  # ... the memory in float32
    # the memory's output under autocast is exactly the float32 memory applied to the bf16 LSTM output
    torch.testing.assert_close(reads, layer.memory(h_seq.float())[0], rtol=0, atol=0)
    full, (_, F32) = layer(x)
    torch.testing.assert_close(out, full, rtol=0.05, atol=0.05)
    torch.testing.assert_close(F, F32, rtol=0.05, atol=0.02)


def test_autocast_mode_is_checked():
    with pytest.raises(ValueError, match="amp must be one of"):
        autocast(torch.device("cpu"), "fp8")
    with pytest.raises(ValueError, match="amp must be one of"):
        CatbAbIConfig(amp="fp16")
    with pytest.raises(ValueError, match="amp must be one of"):
        tiny_train(amp="half")


def _losses(metrics_csv: Path) -> list[float]:
    import csv

    with open(metrics_csv, newline="") as fh:
        return [float(r["train/loss"]) for r in csv.DictReader(fh) if r.get("train/loss")]


def test_catbabi_bf16_training_stays_close_to_float32(babi_variant, tmp_path):
    runs = {}
    for amp in ("none", "bf16"):
        trainer = _babi_trainer(babi_variant, tmp_path / amp, steps=5, eval_every=5, amp=amp)
        trainer.train()
        assert all(t.dtype == torch.float32 for t in _leaves(trainer.state))  # the carried state stays float32
        runs[amp] = (trainer, _losses(tmp_path / amp / "metrics.csv"))
    (fp32, loss32), (bf16, loss16) = runs["none"], runs["bf16"]
    assert len(loss32) == len(loss16) == 5
    np.testing.assert_allclose(loss16, loss32, rtol=0.03)
    for (name, p), q in zip(fp32.model.named_parameters(), bf16.model.parameters()):
        # five Adam steps of lr 3e-3 move a weight by at most 0.015; bf16 rounding changes the moves a little
        assert (p - q).abs().max() < 0.01, name


def test_lm_bf16_training_stays_close_to_float32(tmp_path):
    data = write_corpus(tmp_path / "corpus")
    corpus = load_corpus(data)
    runs = {}
    for amp in ("none", "bf16"):
        trainer = LMTrainer(
            corpus, tiny_config(len(corpus.vocab), "fwm"), tiny_train(steps=6, log_every=1, amp=amp), tmp_path / amp
        )
        trainer.train(show_progress=False)
        assert trainer.state.fast_weights.dtype == trainer.state.layers[0][0].dtype == torch.float32
        runs[amp] = (trainer, _losses(tmp_path / amp / "metrics.csv"))
    (fp32, loss32), (bf16, loss16) = runs["none"], runs["bf16"]
    assert len(loss32) == len(loss16) == 6
    np.testing.assert_allclose(loss16, loss32, rtol=0.03)
    assert math.isclose(fp32.best_valid, bf16.best_valid, rel_tol=0.03)


def test_amp_flags_reach_the_trainers(tmp_path, capsys):
    from tiny_data import run_cli

    assert (
        run_cli(
            [
                "babi",
                "train",
                "--generated",
                "6,2,2",
                "--tasks",
                "1",
                "--steps",
                "2",
                "--eval-every",
                "2",
                "--batch-size",
                "2",
                "--eval-batch-size",
                "2",
                "--amp",
                "bf16",
                "--out",
                str(tmp_path / "b"),
                "--device",
                "cpu",
                "--no-tensorboard",
            ]
        )
        == 0
    )
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["configs"]["train"]["amp"] == "bf16"
    from fwm_rl.cli import main

    data = write_corpus(tmp_path / "corpus")
    assert (
        main(
            [
                "lm",
                "train",
                "--model",
                "fwm",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "l"),
                "--d-embed",
                "8",
                "--d-hidden",
                "8",
                "--n-layers",
                "1",
                "--d-fwm",
                "4",
                "--max-steps",
                "2",
                "--bptt",
                "5",
                "--amp",
                "bf16",
                "--device",
                "cpu",
                "--no-tensorboard",
                "--no-progress",
                "--no-tune-temperature",
            ]
        )
        == 0
    )
    assert load_checkpoint(tmp_path / "l" / CHECKPOINT)["configs"]["train"]["amp"] == "bf16"


# ------------------------------------------------------------------------------- the GPU check
def _gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_lists_its_parts():
    PARTS = _gpu_check_module().PARTS
    proc = _gpu_check("--list")
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [p.name for p in PARTS]
    assert sum(p.limit for p in PARTS) > 0 and {
        "pytest-gpu",
        "a2c",
        "babi",
        "lm",
        "torchrun-lm",
        "bench-fwm",
        "bench-a2c",
    } <= {p.name for p in PARTS}


@pytest.mark.skipif(HAS_CUDA, reason="checks the machine without CUDA")
def test_gpu_check_without_cuda_says_so_in_one_line():
    proc = _gpu_check()
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA device" in proc.stderr
    bad = _gpu_check("--only", "nope")
    assert bad.returncode == 2 and "unknown part" in bad.stderr


def test_gpu_check_rehearsal_on_the_cpu(tmp_path):
    """The script's plumbing (worker processes, torchrun, results, JSON) on the CPU, small sizes."""
    import json

    proc = _gpu_check("--device", "cpu", "--only", "lm-bf16", "torchrun-lm", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = {p["part"]: p for p in report["parts"]}
    assert set(parts) == {"lm-bf16", "torchrun-lm"} and all(p["status"] == "ok" for p in parts.values())
    assert "tokens/s" in parts["lm-bf16"]["figure"] and "backend gloo" in parts["torchrun-lm"]["note"]
    assert (tmp_path / "gpu_check.md").read_text().count("| ok |") == 2


# ------------------------------------------------------------------------------ on a CUDA device
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_forms_equal_the_reference_on_cuda(dtype):
    """Chunked sequences and factored one-step calls against the step form, on CUDA (masks,
    carried state, caps that engage)."""
    tol = {"rtol": 1e-9, "atol": 1e-11} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 2e-5}
    torch.manual_seed(21)
    mem = FastWeightMemory(6, d_fwm=4, n_reads=3, update_scale=0.25, beta_bias=1.0, chunk_size=7).to("cuda", dtype)
    T, B = 23, 4
    h = torch.randn(T, B, 6, dtype=dtype, device="cuda") * 2
    F0 = torch.randn(mem.state_shape(B), dtype=dtype, device="cuda") * 0.1
    masks = {
        "resets": torch.rand(T, B, device="cuda") < 0.15,
        "keep": torch.rand(T, B, device="cuda") < 0.8,
        "read_mask": torch.rand(T, B, device="cuda") < 0.3,
    }

    def sequence(impl):
        x = h.clone().requires_grad_()
        out, F = mem(x, F0, impl=impl, **masks)
        grads = torch.autograd.grad(out.pow(2).sum() + F.pow(3).sum(), [x, *mem.parameters()])
        return [out, F, *grads]

    for ref, fast in zip(sequence("step"), sequence("chunked")):
        torch.testing.assert_close(fast, ref, **tol)

    def one_steps(F):
        outs = []
        for t in range(T):
            out, F = mem(h[t : t + 1], F, **{k: m[t : t + 1] for k, m in masks.items()})
            outs.append(out)
        return torch.cat(outs), mem.dense(F)

    with torch.no_grad():
        factored = mem.initial_state(B, factored=True)._replace(F0=F0, sq=F0.flatten(1).pow(2).sum(1))
        for ref, fast in zip(one_steps(F0), one_steps(factored)):
            torch.testing.assert_close(fast, ref, **tol)


@pytest.mark.gpu
def test_a2c_rollout_does_not_wait_for_the_device_per_step():
    """A rollout of 30 steps (policy on the GPU, the environment's tensors too) waits for the device
    fewer than 30 times: a few times at its start and end, never once per step."""
    from fwm_rl.agents.training import make_model

    model = make_model(A2CConfig(n_envs=64, device="cuda"), torch.device("cuda"))
    model.learn(64 * model.n_steps)  # warm-up: compilation, allocations
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.collect_rollouts(model.env, _NoCallback(model), model.rollout_buffer, model.n_steps)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) < model.n_steps, syncs[:3]


class _NoCallback:
    """The callback interface collect_rollouts calls, doing nothing."""

    def __init__(self, model):
        self.model = model

    def on_rollout_start(self):
        pass

    def update_locals(self, locals_):
        pass

    def on_step(self):
        return True

    def on_rollout_end(self):
        pass


@pytest.mark.gpu
def test_torch_env_on_cuda_gives_the_cpu_statistics():
    """Same seed, torch backend on CUDA vs on the CPU: the generators differ, so the episodes are
    compared by their statistics (a random policy's mean reward); the exact equality of the two cores
    given the same random numbers is tested in test_envs_dynamics."""
    from fwm_rl.envs import GraphBatch
    from fwm_rl.envs.graphs import graph_set

    totals = {}
    for device in ("cpu", "cuda"):
        batch = GraphBatch(600, graphs=graph_set("test"), device=device, seed=0)
        rng = np.random.default_rng(0)
        total = torch.zeros(600, device=device)
        for episode in range(5):
            batch.reset(seed=episode)
            for _ in range(batch.config.horizon):
                _, reward, _, _ = batch.step(torch.as_tensor(rng.integers(0, 3, 600), device=device))
                total += reward
        totals[device] = (total / 5).cpu().numpy()
    sem = math.hypot(totals["cpu"].std() / math.sqrt(600), totals["cuda"].std() / math.sqrt(600))
    assert abs(totals["cpu"].mean() - totals["cuda"].mean()) < 4 * sem


@pytest.mark.gpu
@pytest.mark.parametrize("first, second", [("cpu", "cuda"), ("cuda", "cpu")])
def test_every_trainer_trains_on_cuda_and_resumes_across_devices(first, second, babi_variant, tmp_path):
    # A2C, the environment on the device
    cfg = A2CConfig(
        name="fwm",
        hidden_size=8,
        d_fwm=4,
        n_reads=2,
        n_envs=4,
        steps=2,
        eval_every=1,
        final_episodes_per_graph=1,
        device=first,
    )
    train_run(cfg, tmp_path / "a2c", show_progress=False)
    summary = train_run(
        A2CConfig(**{**cfg.to_dict(), "steps": 3, "device": second}), tmp_path / "a2c", resume=True, show_progress=False
    )
    assert summary.episodes == 3 and math.isfinite(summary.test.mean)
    # catbAbI, float32 and bf16
    for amp in ("none", "bf16"):
        _babi_trainer(babi_variant, tmp_path / f"babi-{amp}", device=first, steps=2, amp=amp).train()
        resumed = CatbAbITrainer.resume(tmp_path / f"babi-{amp}", device=second, steps=4, tensorboard=False)
        assert all(t.device.type == second for t in _leaves(resumed.state))
        assert math.isfinite(resumed.train().loss)
    # LM, float32 and bf16
    data = write_corpus(tmp_path / "corpus")
    corpus = load_corpus(data)
    for amp in ("none", "bf16"):
        out = tmp_path / f"lm-{amp}"
        LMTrainer(
            corpus, tiny_config(len(corpus.vocab), "fwm"), tiny_train(steps=4, device=first, amp=amp), out, data=str(data)
        ).train(show_progress=False)
        resumed = LMTrainer.resume(out, device=second, steps=6)
        assert resumed.state.layers[0][0].device.type == second
        assert math.isfinite(resumed.train(show_progress=False).best_valid_loss)


@pytest.mark.gpu
def test_shipped_agents_load_on_cuda():
    for name in pretrained_module.PRETRAINED:
        model = pretrained_module.load_pretrained(name, device="cuda")
        assert all(p.device.type == "cuda" for p in model.policy.parameters())
        obs = torch.zeros(2, 17).numpy()
        actions, _ = model.predict(obs, None, np.ones(2, dtype=bool))
        assert actions.shape == (2,)
