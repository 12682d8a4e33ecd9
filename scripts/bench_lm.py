"""Benchmark: training speed and validation perplexity after a fixed time budget, AWD-LSTM vs AWD-LSTM + FWM.

    python scripts/bench_lm.py                         # PTB from ../shared/data/ptb, 120 s per model, small size
    python scripts/bench_lm.py --paper-size --device cuda --budget 600

Each model trains (``fwm_rl.lm.LMTrainer``, the paper's regularisation and Adam) for ``--budget`` seconds
of training time, then the whole validation split is scored once with ``--eval-batch-size`` streams (every token once).
The default "small" size (3 x 400 units, 200-d embeddings) keeps CPU runs meaningful; ``--paper-size``
uses the paper's 3 x 1150 / 400 model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from fwm_rl.lm import MEMORIES, LMConfig, LMModelConfig, LMTrainer, load_corpus

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ptb"), help="PTB-style folder")
    parser.add_argument("--models", nargs="+", default=["lstm", "fwm"], choices=MEMORIES, help="memories to train")
    parser.add_argument("--budget", type=float, default=120.0, help="training seconds per model")
    parser.add_argument("--paper-size", action="store_true", help="3 x 1150 LSTM, 400-d embeddings (else 3 x 400, 200-d)")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--eval-batch-size", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=141)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    corpus = load_corpus(args.data)
    size = {} if args.paper_size else {"embedding_size": 200, "hidden_size": 400}
    print(
        f"{corpus.source}: vocabulary {len(corpus.vocab):,}, train {corpus.train.numel():,} tokens; "
        f"budget {args.budget:.0f} s per model; size {'paper' if args.paper_size else 'small'}; threads {args.threads}"
    )
    print(f"{'model':6} {'params':>11} {'steps':>6} {'train tok/s':>12} {'valid ppl':>10} {'eval s':>7}")
    for name in args.models:
        with tempfile.TemporaryDirectory() as out:
            model_config = LMModelConfig(vocab_size=len(corpus.vocab), memory=name, **size)
            config = LMConfig(
                batch_size=args.batch_size,
                time_budget=args.budget,
                eval_every=10**9,
                eval_batch_size=args.eval_batch_size,
                tune_temperature=False,
                tensorboard=False,
                device=args.device,
                seed=args.seed,
            )
            trainer = LMTrainer(corpus, model_config, config, out, data=args.data)
            start = time.perf_counter()
            summary = trainer.train(show_progress=False)  # ends with one validation pass
            eval_seconds = time.perf_counter() - start - trainer.train_seconds
            n_params = sum(p.numel() for p in trainer.model.parameters())
            print(
                f"{name:6} {n_params:>11,} {summary.step:>6} {summary.tokens_per_second:>12,.0f} "
                f"{summary.best_valid_perplexity:>10.1f} {eval_seconds:>7.1f}"
            )


if __name__ == "__main__":
    main()
