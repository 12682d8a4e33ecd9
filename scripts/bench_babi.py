"""Benchmark: catbAbI training speed at the paper's sizes and answer accuracy after a fixed small budget.

    python scripts/bench_babi.py                          # generated stories, CPU-friendly budget
    python scripts/bench_babi.py --device cuda --budget-steps 2000 --budget-preset paper
    python scripts/bench_babi.py --data ../shared/data/babi/tasks_1-20_v1-2_en-subset.tar.gz --allow-missing
    python scripts/bench_babi.py --memories fwm --amp none bf16 --rounds 3 --threads 2 --budget-steps 0   # mixed precision

1. Tokens/s of QA-mode training (batch 32 x 200 tokens) for the paper's FWM (embedding 256, LSTM 256,
   d_fwm 32, 3 reads) and LSTM baseline (4 x 512), timed over ``--timing-steps`` steps.
2. Answer accuracy on the fixed validation/test streams after ``--budget-steps`` QA-mode steps of
   the ``--budget-preset`` models on the same data (default: generated stories, the small preset).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from fwm_rl.babi import MEMORIES, PRESETS, CatbAbITrainer, DataSpec, load_catbabi, preset_configs
from fwm_rl.engine import AMP_MODES


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="official bAbI (default: generated stories)")
    parser.add_argument("--allow-missing", action="store_true")
    parser.add_argument("--generated", default="200,20,20", help="generated stories per task: train,valid,test")
    parser.add_argument("--memories", "--models", nargs="+", default=list(MEMORIES), choices=MEMORIES)
    parser.add_argument("--timing-steps", type=int, default=5)
    parser.add_argument("--budget-steps", type=int, default=300)
    parser.add_argument("--budget-preset", default="small", choices=tuple(PRESETS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--amp",
        nargs="+",
        choices=AMP_MODES,
        default=["none"],
        help="mixed-precision modes of the speed table, each timed in turn over --rounds rounds (default none)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of the speed table; each model and mode keeps its best (default 1)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.timing_steps < 1 or args.budget_steps < 0:
        parser.error("--rounds and --timing-steps must be at least 1 and --budget-steps at least 0 (0: no accuracy table)")
    torch.set_num_threads(args.threads)

    spec = DataSpec(
        path=args.data,
        allow_missing=args.allow_missing,
        generated=tuple(int(n) for n in args.generated.split(",")),
        seed=args.seed,
    )
    data = load_catbabi(spec)
    print(f"data: {spec.describe()}; vocabulary {len(data.vocab)}; threads {args.threads}")
    print(f"{'memory':6} {'size':6} {'amp':5} {'params':>10} {'train tok/s':>12}")
    trainers = {
        (name, amp): CatbAbITrainer(
            *preset_configs(
                "paper", name, batch_size=args.batch_size, seed=args.seed, amp=amp, device=args.device, tensorboard=False
            ),
            spec,
            None,
            data=data,
        )
        for name in args.memories
        for amp in args.amp
    }
    best = dict.fromkeys(trainers, 0.0)
    for round_ in range(args.rounds):  # variants in turn: a machine that slows down slows every variant alike
        for key, trainer in trainers.items():
            best[key] = max(best[key], trainer.throughput(args.timing_steps, warmup=2 if round_ == 0 else 0))
    for (name, amp), trainer in trainers.items():
        print(f"{name:6} {'paper':6} {amp:5} {trainer.model.num_parameters():>10,} {best[name, amp]:>12,.0f}")
    if args.budget_steps == 0:
        return

    print(f"\nQA mode, {args.budget_steps} steps, {args.budget_preset} preset, batch {args.batch_size}:")
    print(f"{'memory':6} {'params':>10} {'valid acc':>10} {'test acc':>9} {'test ppl':>9} {'train s':>8}")
    for name in args.memories:
        model, config = preset_configs(
            args.budget_preset,
            name,
            batch_size=args.batch_size,
            steps=args.budget_steps,
            eval_every=args.budget_steps,
            seed=args.seed,
            device=args.device,
            tensorboard=False,
        )
        with tempfile.TemporaryDirectory() as out:
            trainer = CatbAbITrainer(model, config, spec, out, data=data)
            start = time.perf_counter()
            test = trainer.train()
            seconds = time.perf_counter() - start
            valid = trainer.evaluate("valid")
        print(
            f"{name:6} {trainer.model.num_parameters():>10,} {valid.answer_accuracy:>10.4f} {test.answer_accuracy:>9.4f} "
            f"{test.answer_perplexity:>9.3f} {seconds:>8.1f}"
        )


if __name__ == "__main__":
    main()
