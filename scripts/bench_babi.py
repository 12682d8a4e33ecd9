"""Benchmark: catbAbI training speed at the paper's sizes and answer accuracy after a fixed small budget.

    python scripts/bench_babi.py                          # generated stories, CPU-friendly budget
    python scripts/bench_babi.py --device cuda --budget-steps 2000 --budget-preset paper
    python scripts/bench_babi.py --data ../shared/data/babi/tasks_1-20_v1-2_en-subset.tar.gz --allow-missing

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

from fwm_rl.babi import CatbAbITrainer, DataSpec, TrainConfig, load_catbabi, preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="official bAbI (default: generated stories)")
    parser.add_argument("--allow-missing", action="store_true")
    parser.add_argument("--generated", default="200,20,20", help="generated stories per task: train,valid,test")
    parser.add_argument("--models", nargs="+", default=["fwm", "lstm"], choices=["fwm", "lstm"])
    parser.add_argument("--timing-steps", type=int, default=5)
    parser.add_argument("--budget-steps", type=int, default=300)
    parser.add_argument("--budget-preset", default="small", choices=["small", "paper"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = DataSpec(path=args.data, allow_missing=args.allow_missing,
                    generated=tuple(int(n) for n in args.generated.split(",")), seed=args.seed)
    data = load_catbabi(spec)
    print(f"data: {spec.describe()}; vocabulary {len(data.vocab)}; threads {args.threads}")
    print(f"{'model':6} {'size':6} {'params':>10} {'train tok/s':>12}")
    for name in args.models:
        config = TrainConfig(batch_size=args.batch_size, seed=args.seed)
        trainer = CatbAbITrainer(preset("paper", name), config, spec, None, args.device, data=data, tensorboard=False)
        print(f"{name:6} {'paper':6} {trainer.model.num_parameters():>10,} {trainer.throughput(args.timing_steps):>12,.0f}")

    print(f"\nQA mode, {args.budget_steps} steps, {args.budget_preset} preset, batch {args.batch_size}:")
    print(f"{'model':6} {'params':>10} {'valid acc':>10} {'test acc':>9} {'test ppl':>9} {'train s':>8}")
    for name in args.models:
        config = TrainConfig(batch_size=args.batch_size, steps=args.budget_steps, eval_every=args.budget_steps, seed=args.seed)
        with tempfile.TemporaryDirectory() as out:
            trainer = CatbAbITrainer(preset(args.budget_preset, name), config, spec, out, args.device, data=data, tensorboard=False)
            start = time.perf_counter()
            test = trainer.train()
            seconds = time.perf_counter() - start
            valid = trainer.evaluate("valid")
        print(f"{name:6} {trainer.model.num_parameters():>10,} {valid.answer_accuracy:>10.4f} {test.answer_accuracy:>9.4f} "
              f"{test.answer_perplexity:>9.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
