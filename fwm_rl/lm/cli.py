"""``fwm-rl lm``: train, evaluate, compare and plot word-level language models (paper section 4.3)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import fields
from pathlib import Path

from fwm_rl.engine import (
    AMP_MODES,
    BEST,
    CHECKPOINT,
    Preset,
    add_device_option,
    add_options,
    add_run_options,
    add_trust_option,
    given,
    resume_options,
)
from fwm_rl.lm.config import MEMORIES, PRESETS, LMConfig, LMModelConfig

#: ``lm train`` options made from the configs' fields (:func:`fwm_rl.engine.add_options`: help and defaults are the configs'
#: and the presets'): every field but the vocabulary's size, which the corpus sets.
MODEL_OPTIONS = tuple(f.name for f in fields(LMModelConfig) if f.name != "vocab_size")
TRAIN_OPTIONS = tuple(f.name for f in fields(LMConfig))


def _preset_defaults() -> dict[str, str]:
    """The help's default of each option a preset sets: every preset's value (the config's default for the rest)."""

    def value(preset: Preset, name: str) -> str:
        return "/".join(dict.fromkeys(str(run.get(name, "-")) for run in preset.runs.values()))

    names = {name for preset in PRESETS.values() for run in preset.runs.values() for name in run} - {"memory"}
    return {name: "default: " + ", ".join(f"{key} {value(preset, name)}" for key, preset in PRESETS.items()) for name in names}


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
        description="Train an AWD-LSTM (--memory lstm) or AWD-LSTM + FWM (--memory fwm). "
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
        "--data",
        help="folder with train.txt/valid.txt/test.txt or wiki.{train,valid,test}.tokens (.gz ok); "
        "default: text from the built-in bAbI story generator",
    )
    defaults = {**_preset_defaults(), "memory": "required unless --resume"}
    add_options(train, LMModelConfig, MODEL_OPTIONS, defaults=defaults, choices={"memory": MEMORIES})
    run_options = add_run_options(train, LMConfig, out="runs/lm-MEMORY")
    add_options(
        train, LMConfig, [n for n in TRAIN_OPTIONS if n not in run_options], defaults=defaults, choices={"amp": AMP_MODES}
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
    add_device_option(ev, LMConfig)
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
    cmp.add_argument("--labels", nargs=2, metavar=("A", "B"), help="row names (default: the memories)")
    add_device_option(cmp, LMConfig)
    add_trust_option(cmp)
    cmp.set_defaults(func=_compare)

    plot = commands.add_parser("plot", help="learning curves: validation perplexity against steps and hours of training")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="LM run folders (written by lm train)")
    plot.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per run (default: the folder names)")
    plot.add_argument("--out", default="lm-curves.png", help="PNG to write (default lm-curves.png)")
    plot.set_defaults(func=_plot)


def _print_config(
    model_config: LMModelConfig, config: LMConfig, data: str | None, out: str, preset: str | None = None
) -> None:
    """``--print-config``: the settings a run trains with (or a resumed run continues with), as JSON."""
    settings = {"model": model_config.to_dict(), "train": config.to_dict(), "data": data, "out": out}
    print(json.dumps({"preset": preset, **settings} if preset else settings, indent=2))


def _train(args: argparse.Namespace) -> int:
    from fwm_rl.engine.distributed import init_distributed, main_print
    from fwm_rl.lm.corpus import load_data
    from fwm_rl.lm.trainer import LMTrainer

    show = not args.no_progress
    if args.resume is not None:
        more = "--data (the run's data in a new place)"
        folder, changes = resume_options(args, LMConfig, ("preset", *MODEL_OPTIONS, *TRAIN_OPTIONS), more)
        trainer = LMTrainer.resume(folder, data=args.data, **changes)  # (under torchrun: joins the group)
        if args.print_config:  # the settings the resumed run would continue with
            _print_config(trainer.model_config, trainer.config, trainer.data, folder)
            return 0
        say = main_print(trainer.ctx)
        say(f"resuming {folder} at step {trainer.step} (epoch {trainer.epoch}) on {trainer.corpus.source}")
    else:
        if args.memory is None:
            raise ValueError("--memory is required: lstm or fwm")
        preset_name = args.preset or ("ptb" if args.data else "small")
        preset = PRESETS[preset_name]
        values = {**preset.run(args.memory), **given(args, (*MODEL_OPTIONS, *TRAIN_OPTIONS))}
        config = LMConfig(**{name: values[name] for name in TRAIN_OPTIONS if name in values})
        say = main_print(init_distributed(config.device))  # under torchrun: join the group (the trainer gets the same context)
        if args.data is None and not args.print_config:
            say(
                "no --data given: training on the embedded default, text generated by the bAbI story generator "
                "(fwm_rl.babi.generator); pass --data DIR for PTB / WikiText-2"
            )
        corpus = load_data(args.data)
        if not args.print_config:
            say(
                f"recipe --preset {preset_name}: {preset.description} (flags given override it; --print-config shows the result)"
            )
        model_config = LMModelConfig(
            vocab_size=len(corpus.vocab), **{name: values[name] for name in MODEL_OPTIONS if name in values}
        )
        out = args.out or f"runs/lm-{model_config.memory}"
        if args.print_config:
            _print_config(model_config, config, args.data, out, preset=preset_name)
            return 0
        data = None if args.data is None else str(Path(args.data).resolve())  # (a run resumes from anywhere)
        trainer = LMTrainer(corpus, model_config, config, out, data=data)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        processes = f"; {trainer.ctx.world_size} processes ({trainer.ctx.backend})" if trainer.ctx.distributed else ""
        say(
            f"{model_config.memory}: {n_params:,} parameters; {corpus.source}: vocabulary {len(corpus.vocab):,}, "
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
        f"{model.config.memory} {args.split}: loss {result.loss:.4f} nats, perplexity {result.perplexity:.2f}, "
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
