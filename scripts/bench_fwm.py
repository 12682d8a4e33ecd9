"""Forward+backward throughput of the FWM: fast (chunked) vs reference (step) vs plain LSTM.

Two configurations from the paper, timed in one run on the same machine:

* meta-RL agent: 600 envs x 30 steps, 17 inputs, LSTM 32, d_fwm 16, 3 reads, policy + value heads;
* catbAbI model: batch 32 x 200 tokens, embedding 256, LSTM 256, d_fwm 32, 3 reads, softmax over 180 words,
  starting from the state a previous segment left (as in training on a long stream).

Usage: ``python scripts/bench_fwm.py [--repeats 3] [--rounds 1] [--threads N] [--device cpu]``.
Prints a Markdown table (time per batch, items/s, ratios, peak memory of the variant's own process:
resident set size on CPU, allocated memory on CUDA). Each variant's time is its best over
``--repeats`` batches in each of ``--rounds`` processes; the rounds run the variants in turn, so a
machine that slows down for a while slows every variant alike.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch
from torch import nn

from fwm_rl.engine import resolve_device
from fwm_rl.memory import FWMLSTM


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Model(nn.Module):
    """Slow net (+ memory) + linear head(s); ``memory=False`` is the plain-LSTM baseline."""

    def __init__(
        self, n_in, hidden, d_fwm, n_out, memory: bool, impl: str, embed: int | None, residual: bool, need_state: bool, **opts
    ):
        super().__init__()
        self.need_state = need_state
        self.embed = nn.Embedding(n_out, embed) if embed else None
        width = embed or n_in
        self.core = (
            FWMLSTM(width, hidden, d_fwm, 3, residual=residual, impl=impl, **opts) if memory else nn.LSTM(width, hidden)
        )
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x, state=None):
        x = self.embed(x) if self.embed is not None else x
        out, _ = self.core(x, state, need_state=self.need_state) if isinstance(self.core, FWMLSTM) else self.core(x, state)
        return self.head(out)


def _measure(args) -> tuple[float, float]:
    """Time one variant in a fresh process, so its peak RSS is its own."""
    T, B, n_in, hidden, d, embed, residual, need_state, opts, memory, impl, repeats, device, threads = args
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    torch.manual_seed(0)
    x = torch.randint(0, n_in, (T, B), device=device) if embed else torch.randn(T, B, n_in, device=device)
    model = _Model(n_in, hidden, d, n_in if embed else 4, memory, impl, embed, residual, need_state, **opts).to(device)
    state = None
    if need_state:  # a segment of a long stream: the state of the previous segment is carried in
        with torch.no_grad():
            state = model.core(model.embed(x) if embed else x)[1]
    return _time(model, x, state, repeats, device)


def _time(model, x, state, repeats: int, device) -> tuple[float, float]:
    def step():
        model.zero_grad(set_to_none=True)
        model(x, state).float().pow(2).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times), _peak_mib(device)


CONFIGS = {
    # name: (T, B, n_in/vocab, hidden, d_fwm, embed, residual, need_state, memory options as in the authors' code)
    # The A2C update replays whole episodes from an empty memory and drops the state after them
    # (need_state=False); catbAbI starts each segment from the previous one's state and keeps it.
    "meta-RL (600x30, LSTM 32, d_fwm 16)": (
        30,
        600,
        17,
        32,
        16,
        None,
        True,
        False,
        {"beta_bias": 1.0, "update_scale": 1 / 16, "tanh_first_query": False, "tanh_read_keys": False},
    ),
    "catbAbI (32x200, LSTM 256, d_fwm 32)": (
        200,
        32,
        180,
        256,
        32,
        256,
        True,
        True,
        {"beta_bias": 1.0, "update_scale": 1 / 32, "tanh_first_query": False},
    ),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per process")
    parser.add_argument("--rounds", type=int, default=1, help="processes per variant, run in turn with the other variants")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=["meta-RL", "catbAbI"], default=None)
    args = parser.parse_args(argv)
    for name in ("repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    device = resolve_device(args.device)
    threads = args.threads or torch.get_num_threads()
    print(
        f"device {device}, torch {torch.__version__}, threads {threads}; each variant runs in its own process, {args.rounds} round(s)\n"
    )
    print("| configuration | variant | ms / batch (fwd+bwd) | items/s | vs step | vs LSTM | peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for name, (T, B, n_in, hidden, d, embed, residual, need_state, opts) in CONFIGS.items():
        if args.only and not name.startswith(args.only):
            continue
        results: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for variant, memory, impl in (
                ("LSTM only", False, "auto"),
                ("FWM fast", True, "chunked"),
                ("FWM step", True, "step"),
            ):
                job = (
                    T,
                    B,
                    n_in,
                    hidden,
                    d,
                    embed,
                    residual,
                    need_state,
                    opts,
                    memory,
                    impl,
                    args.repeats,
                    str(device),
                    args.threads,
                )
                with mp.get_context("spawn").Pool(1) as pool:
                    sec, peak = pool.apply(_measure, (job,))
                best = results.get(variant, (float("inf"), 0.0))
                results[variant] = (min(sec, best[0]), max(peak, best[1]))
        for variant, (sec, peak) in results.items():
            vs_step = results["FWM step"][0] / sec
            vs_lstm = sec / results["LSTM only"][0]
            print(
                f"| {name} | {variant} | {sec * 1e3:.1f} | {T * B / sec:,.0f} | {vs_step:.1f}x faster | {vs_lstm:.2f}x time | {peak:.0f} |"
            )


if __name__ == "__main__":
    main()
