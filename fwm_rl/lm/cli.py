"""``fwm-rl lm``: train, evaluate, compare and plot word-level language models (paper section 4.3)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import fields
from pathlib import Path

from fwm_rl.engine import AMP_MODES, BEST, CHECKPOINT, add_options, add_trust_option, flag, given, resumable_flags
from fwm_rl.lm.model import MODELS, LMConfig
from fwm_rl.lm.presets import PRESETS
from fwm_rl.lm.trainer import TrainConfig

#: ``lm train`` options made from the configs' fields (:func:`fwm_rl.engine.add_options`: help and defaults are the configs').
MODEL_OPTIONS = tuple(f.name for f in fields(LMConfig) if f.name not in ("vocab_size", "model", "tie_weights"))
TRAIN_OPTIONS = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("device", "tensorboard", "tune_temperature", "amp")
)


def _preset_defaults(part: str) -> dict[str, str]:
    """The help's default of each option a preset sets: every preset's value (the config's default for the rest)."""
    names = {name for preset in PRESETS.values() for name in getattr(preset, part)}
    return {
        name: "default: " + ", ".join(f"{key} {getattr(preset, part).get(name, '-')}" for key, preset in PRESETS.items())
        for name in names
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lm train``, ``lm eval``, ``lm compare`` and ``lm plot``."""
    lm = subparsers.add_parser(
        "lm",
        help="word-level language modelling (PTB / WikiText-2 layout)",
        description="Word-level language modelling with an AWD-LSTM, with or without the FWM (paper 4.3).",
    )
    commands = lm.add_subparsers(dest="lm_command", metavar="LM_COMMAND", required=True)

    train = commands.add_parser(
        "train",
        help="train an LSTM or FWM language model",
        description="Train an AWD-LSTM (--model lstm) or AWD-LSTM + FWM (--model fwm). "
        "Defaults of size/regularisation options are the paper's PTB run.",
    )
    train.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="recipe (default ptb with --data, small without): "
        + "; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()),
    )
    train.add_argument(
        "--model", choices=MODELS, help="fwm: AWD-LSTM with the FWM on top; lstm: AWD-LSTM (required unless --resume)"
    )
    train.add_argument(
        "--data",
        help="folder with train.txt/valid.txt/test.txt or wiki.{train,valid,test}.tokens (.gz ok); "
        "default: text from the built-in bAbI story generator",
    )
    train.add_argument("--out", help="run folder for checkpoints and logs (default runs/lm-MODEL)")
    train.add_argument("--resume", action="store_true", help=f"continue the run in --out from its {CHECKPOINT}")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an --out folder that holds a run, deleting only the files that run wrote"
        " (refused while a run there is live, or where files a new run would replace are not a run's)",
    )
    train.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    train.add_argument(
        "--no-tie", dest="tie_weights", action="store_const", const=False, help="do not tie input and output embeddings"
    )
    add_options(train, LMConfig, MODEL_OPTIONS, defaults=_preset_defaults("model"))
    add_options(train, TrainConfig, (*TRAIN_OPTIONS, "amp"), defaults=_preset_defaults("train"), choices={"amp": AMP_MODES})
    train.add_argument(
        "--no-temperature",
        dest="tune_temperature",
        action="store_const",
        const=False,
        help="skip tuning the softmax temperature on validation at the end",
    )
    train.add_argument("--no-tensorboard", dest="tensorboard", action="store_const", const=False, help="CSV log only")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration as JSON and exit (nothing is trained)"
    )
    add_trust_option(train)
    train.set_defaults(func=_train)

    ev = commands.add_parser("eval", help="perplexity of a checkpoint on a split (batch size 1, every token once)")
    ev.add_argument(
        "checkpoint",
        help=f"a {BEST} or {CHECKPOINT} written by lm train, or its run folder (then its {BEST}, else its {CHECKPOINT})",
    )
    ev.add_argument("--split", default="test", choices=("train", "valid", "test"), help="split to score (default test)")
    ev.add_argument("--data", help="evaluate on this folder instead of the training data (same vocabulary needed)")
    ev.add_argument("--batch-size", type=int, default=1, help="1 (default) reads the split as one stream")
    ev.add_argument("--bptt", type=int, default=70, help="window length (does not change the result)")
    ev.add_argument("--temperature", type=float, help="softmax temperature (default: the one tuned on validation)")
    ev.add_argument("--device", default="auto", help="auto (CUDA when present, default) | cpu | cuda[:N]")
    add_trust_option(ev)
    ev.set_defaults(func=_eval)

    cmp = commands.add_parser("compare", help="Figure-6 plot of two models' per-token loss over a stretch of text")
    cmp.add_argument(
        "checkpoint_a", help=f"first model (a {BEST} or {CHECKPOINT}, or a run folder: its {BEST}, else its {CHECKPOINT})"
    )
    cmp.add_argument("checkpoint_b", help="second model; blue where it is better")
    cmp.add_argument(
        "--split",
        default="test",
        choices=("train", "valid", "test"),
        help="split the stretch of text comes from (default test)",
    )
    cmp.add_argument("--start", type=int, default=0, help="first word of the stretch")
    cmp.add_argument("--length", type=int, default=60, help="number of words")
    cmp.add_argument("--out", default="lm-compare.png", help="PNG to write")
    cmp.add_argument("--data", help="text folder (default: the one the checkpoints were trained on)")
    cmp.add_argument("--labels", nargs=2, metavar=("A", "B"), help="row names (default: the model types)")
    cmp.add_argument("--device", default="auto", help="auto (CUDA when present, default) | cpu | cuda[:N]")
    add_trust_option(cmp)
    cmp.set_defaults(func=_compare)

    plot = commands.add_parser("plot", help="learning curves: validation perplexity against steps and hours of training")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="LM run folders (written by lm train)")
    plot.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per run (default: the folder names)")
    plot.add_argument("--out", default="lm-curves.png", help="PNG to write (default lm-curves.png)")
    plot.set_defaults(func=_plot)


def _train(args: argparse.Namespace) -> int:
    from fwm_rl.engine.distributed import init_distributed, main_print
    from fwm_rl.lm.corpus import load_data
    from fwm_rl.lm.trainer import LMTrainer

    model_names = [f.name for f in fields(LMConfig) if f.name not in ("vocab_size", "model")]
    train_names = [f.name for f in fields(TrainConfig)]
    show = not args.no_progress
    ctx = init_distributed(args.device)  # under torchrun: join the group (the trainer gets the same context)
    say = main_print(ctx)
    if args.resume:
        if args.out is None:
            raise ValueError("--resume needs --out, the run folder to continue")
        if args.overwrite:
            raise ValueError("--overwrite starts a new run; it cannot be combined with --resume")
        fixed = given(args, ["model", *model_names, *(n for n in train_names if n not in TrainConfig.RESUMABLE)])
        may = resumable_flags(TrainConfig, "--data (the run's data in a new place)")
        if fixed:
            raise ValueError(
                f"--resume continues with the checkpoint's settings; only {may} may be given, not {', '.join(map(flag, fixed))}"
            )
        trainer = LMTrainer.resume(args.out, data=args.data, **given(args, TrainConfig.RESUMABLE))  # (--device among them)
        say(f"resuming {args.out} at step {trainer.step} (epoch {trainer.epoch}) on {trainer.corpus.source}")
    else:
        if args.model is None:
            raise ValueError("--model is required: lstm or fwm")
        if args.data is None and not args.print_config:
            say(
                "no --data given: training on the embedded default, text generated by the bAbI story generator "
                "(fwm_rl.babi.generator); pass --data DIR for PTB / WikiText-2"
            )
        corpus = load_data(args.data)
        preset_name = args.preset or ("ptb" if args.data else "small")
        preset = PRESETS[preset_name]
        if not args.print_config:
            say(
                f"recipe --preset {preset_name}: {preset.description} (flags given override it; --print-config shows the result)"
            )
        model_config = LMConfig(vocab_size=len(corpus.vocab), model=args.model, **{**preset.model, **given(args, model_names)})
        config = TrainConfig(**{**preset.train, **given(args, train_names)})
        out = args.out or f"runs/lm-{args.model}"
        if args.print_config:
            print(
                json.dumps(
                    {
                        "preset": preset_name,
                        "model": model_config.to_dict(),
                        "train": config.to_dict(),
                        "data": args.data,
                        "out": out,
                    },
                    indent=2,
                )
            )
            return 0
        data = None if args.data is None else str(Path(args.data).resolve())  # (a run resumes from anywhere)
        trainer = LMTrainer(corpus, model_config, config, out, data=data)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        processes = f"; {ctx.world_size} processes ({ctx.backend})" if ctx.distributed else ""
        say(
            f"{args.model}: {n_params:,} parameters; {corpus.source}: vocabulary {len(corpus.vocab):,}, "
            f"train {corpus.train.numel():,} tokens; run folder {out}{processes}"
        )
    summary = trainer.train(show_progress=show, overwrite=args.overwrite)
    say(
        f"stopped at step {summary.step} (epoch {summary.epoch}); best validation perplexity "
        f"{summary.best_valid_perplexity:.2f}; tuned temperature {summary.temperature:.2f}; "
        f"{summary.tokens_per_second:,.0f} training tokens/s; best weights in {summary.out_dir / BEST}"
    )
    if summary.final is not None:
        say(
            f"final test of {BEST} (batch size {trainer.config.test_batch_size}): test perplexity {math.exp(summary.final['test']):.2f}, "
            f"valid {math.exp(summary.final['valid']):.2f} (results.json)"
        )
    return 0


def _eval(args: argparse.Namespace) -> int:
    from fwm_rl.lm.trainer import checkpoint_corpus, evaluate, load_model

    model, ckpt = load_model(args.checkpoint, args.device)
    tokens = checkpoint_corpus(ckpt, args.data).split(args.split)
    temperature = ckpt["task"]["temperature"] if args.temperature is None else args.temperature
    result = evaluate(model, tokens, batch_size=args.batch_size, bptt=args.bptt, temperature=temperature, show_progress=True)
    print(
        f"{ckpt['configs']['model']['model']} {args.split}: loss {result.loss:.4f} nats, perplexity {result.perplexity:.2f}, "
        f"{result.bits_per_word:.3f} bits/word over {result.n_tokens:,} tokens (batch size {args.batch_size}, "
        f"temperature {temperature:.2f})"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    from fwm_rl.lm.compare import compare_checkpoints

    result = compare_checkpoints(
        args.checkpoint_a,
        args.checkpoint_b,
        args.out,
        split=args.split,
        start=args.start,
        length=args.length,
        data=args.data,
        labels=tuple(args.labels) if args.labels else None,
        device=args.device,
    )
    a, b = result.labels
    print(
        f"{a}: {result.bits_a.mean():.3f} bits/word, {b}: {result.bits_b.mean():.3f} bits/word over {len(result.words)} words "
        f"({a} - {b} = {result.mean_difference:+.3f}); figure {result.figure}"
    )
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fwm_rl.engine import plot_curves

    out = plot_curves(
        args.run_dirs,
        args.out,
        column="valid/ppl",
        ylabel="validation perplexity (periodic validation)",
        what="an LM run folder (written by fwm-rl lm train)",
        labels=args.labels,
        log_y=True,
    )
    print(f"wrote {out}")
    return 0
