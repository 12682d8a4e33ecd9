"""The ``fwm-rl babi`` commands: stats, generate, train, eval, explain, plot, answer."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from fwm_rl.babi.config import MEMORIES, MODES, PRESETS, CatbAbIConfig, CatbAbIModelConfig, preset_configs
from fwm_rl.babi.reader import SPLITS, VARIANTS
from fwm_rl.engine import (
    AMP_MODES,
    add_device_option,
    add_options,
    add_run_options,
    add_trust_option,
    given,
    resumable_flags,
    resume_options,
)

__all__ = ["register"]

#: ``babi train``'s options made from the configs' fields (:func:`fwm_rl.engine.add_options`: help and defaults are the
#: configs'; where a preset sets a field, the preset's).
MODEL_OPTIONS = tuple(f.name for f in fields(CatbAbIModelConfig))
TRAIN_OPTIONS = tuple(f.name for f in fields(CatbAbIConfig))
#: The data options a resumed run cannot change (``--data`` may: the run's data in a new place).
DATA_OPTIONS = ("variant", "generated", "tasks", "fill_missing_from")
MOVED_DATA = "--data (the run's data in a new place)"


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _splits(text: str) -> tuple[str, ...]:
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise argparse.ArgumentTypeError(f"splits must be a comma-separated subset of {','.join(SPLITS)}, got {text!r}")
    return splits


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        help="official bAbI v1.2: the tasks_1-20_v1-2 .tar.gz, its extracted folder or a variant folder "
        "(default: stories from the built-in generator)",
    )
    p.add_argument("--variant", choices=VARIANTS, help="variant inside an archive or tasks folder (default en-valid-10k)")
    p.add_argument("--allow-missing", action="store_true", help="go on without task files missing from a split")
    p.add_argument(
        "--fill-missing-from",
        choices=VARIANTS,
        metavar="VARIANT",
        help="take task files missing from --variant from this variant (e.g. en-valid for the shared archive's "
        "missing en-valid-10k/qa3_train.txt); the run's data description says so",
    )
    p.add_argument(
        "--generated",
        type=_ints,
        default=None,
        metavar="TRAIN,VALID,TEST",
        help="stories per task of the generated data (default 1000,100,100)",
    )
    p.add_argument("--data-seed", type=int, default=0, help="seed of the generated data")
    p.add_argument("--tasks", type=_ints, default=None, help="only these tasks, e.g. 1,2,3 (default all)")


def _data_spec(args):
    from fwm_rl.babi.catbabi import DEFAULT_GENERATED, DataSpec

    if args.data is not None and args.generated is not None:
        raise ValueError("--generated sizes the built-in data; it cannot be combined with --data")
    if args.tasks is not None and any(not 1 <= t <= 20 for t in args.tasks):
        raise ValueError(f"--tasks must be task ids 1..20, got {args.tasks}")
    if args.tasks is not None and len(set(args.tasks)) != len(args.tasks):
        raise ValueError(f"--tasks names a task more than once: {','.join(map(str, args.tasks))}")
    path = None if args.data is None else str(Path(args.data).resolve())  # (a run resumes from anywhere)
    if args.fill_missing_from is not None and (
        args.data is None or args.fill_missing_from == (args.variant or "en-valid-10k")
    ):
        raise ValueError("--fill-missing-from names another variant of the official data given with --data")
    return DataSpec(
        path=path,
        variant=args.variant,
        allow_missing=args.allow_missing,
        fill_missing_from=args.fill_missing_from,
        generated=tuple(args.generated or DEFAULT_GENERATED),
        seed=args.data_seed,
        tasks=args.tasks,
    )


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="a catbAbI run folder or its checkpoint.pt (or give --pretrained)")
    p.add_argument("--pretrained", metavar="NAME", help="a model shipped with the package (see docs/babi.md), e.g. fwm-qa")
    add_device_option(p, CatbAbIConfig)


# ---------------------------------------------------------------------- stats
def _stats(args) -> int:
    from fwm_rl.babi.catbabi import Vocabulary, split_stats

    spec = _data_spec(args)
    print(f"data: {spec.describe()}")
    stories = spec.read(args.splits)
    print(f"{'split':<8}{'task':>6}{'stories':>10}{'questions':>11}{'tokens':>11}")
    for split, items in stories.items():
        if args.per_task:
            for task in sorted({s.task for s in items}):
                st = split_stats([s for s in items if s.task == task])
                print(f"{split:<8}{task:>6}{st['stories']:>10,}{st['questions']:>11,}{st['tokens']:>11,}")
        st = split_stats(items)
        print(f"{split:<8}{'all':>6}{st['stories']:>10,}{st['questions']:>11,}{st['tokens']:>11,}")
    vocab = Vocabulary.from_stories(s for items in stories.values() for s in items)
    print(f"vocabulary ({'+'.join(args.splits)}, incl. <pad> and <eos>): {len(vocab)} words")
    print("tokens count every story's words plus its end-of-story token")
    return 0


# ------------------------------------------------------------------- generate
def _generate(args) -> int:
    from fwm_rl.babi.generator.dataset import DEFAULT_STORIES, write_dataset

    splits = tuple(DEFAULT_STORIES[args.variant])  # en / en-10k have no valid files
    n = None
    if args.stories is not None:
        if len(args.stories) != len(splits):
            raise ValueError(
                f"--stories for variant {args.variant} needs {','.join(s.upper() for s in splits)} counts, got {args.stories}"
            )
        n = dict(zip(splits, args.stories))
    folder = write_dataset(
        args.out, variant=args.variant, n_stories=n, seed=args.seed, tasks=args.tasks or range(1, 21), overwrite=args.overwrite
    )
    print(f"wrote generated bAbI-style stories (not the official data) to {folder}")
    return 0


# ---------------------------------------------------------------------- train
def _print_config(model_config: CatbAbIModelConfig, config: CatbAbIConfig, spec, out: str | Path) -> None:
    """``--print-config``: the settings a run trains with (or a resumed run continues with), as JSON."""
    settings = {"model": model_config.to_dict(), "train": config.to_dict(), "data": spec.to_dict(), "out": str(out)}
    print(json.dumps(settings, indent=2))


def _train(args) -> int:
    from fwm_rl.babi.trainer import CatbAbITrainer
    from fwm_rl.engine.distributed import init_distributed, main_print

    if args.resume is not None:
        names = (*TRAIN_OPTIONS, *MODEL_OPTIONS, "preset", *DATA_OPTIONS)
        folder, changes = resume_options(args, CatbAbIConfig, names, MOVED_DATA)
        trainer = CatbAbITrainer.resume(folder, data_path=args.data, **changes)
        if args.print_config:  # the settings the resumed run would continue with
            _print_config(trainer.model_config, trainer.config, trainer.data_spec, folder)
            return 0
        say = main_print(trainer.ctx)
        say(
            f"resuming {folder} at step {trainer.step} ({trainer.data_spec.describe()}); the checkpoint's settings apply, "
            f"only {resumable_flags(CatbAbIConfig, MOVED_DATA)} are taken from the command line"
        )
    else:
        spec = _data_spec(args)
        name = args.preset or ("paper" if args.data else "small")
        options = given(args, (*MODEL_OPTIONS, *TRAIN_OPTIONS))
        memory = options.pop("memory", CatbAbIModelConfig.memory)
        model_config, config = preset_configs(name, memory, **options)
        out = Path(args.out or f"runs/babi-{memory}-{config.mode}")
        if args.print_config:
            _print_config(model_config, config, spec, out)
            return 0
        ctx = init_distributed(config.device)  # under torchrun: join the group (the trainer gets the same context)
        say = main_print(ctx)
        say(f"data: {spec.describe()}")
        trainer = CatbAbITrainer(model_config, config, spec, out)
        processes = f", {ctx.world_size} processes ({ctx.backend})" if ctx.distributed else ""
        say(
            f"model: {memory} ({name} preset) {model_config.to_dict()}, {trainer.model.num_parameters():,} parameters, "
            f"vocabulary {len(trainer.data.vocab)}, device {trainer.device}{processes}, {config.mode.upper()} mode"
        )
    test = trainer.train(overwrite=args.resume is None and args.overwrite, show_progress=not args.no_progress)
    _print_result(test, f"test (final weights, batch size {trainer.config.eval_batch_size})", per_task=False, say=say)
    if trainer.test_best is not None:
        _print_result(
            trainer.test_best,
            f"test (best validation loss, step {trainer.best_step}, batch size {trainer.config.test_batch_size})",
            per_task=True,
            say=say,
        )
    say(f"run folder: {trainer.out_dir}")
    return 0


def _print_result(result, split: str, per_task: bool, say=print) -> None:
    say(
        f"{split}: answer accuracy {result.answer_accuracy:.4f}, answer perplexity {result.answer_perplexity:.4f} "
        f"({result.answers:,} answers, {result.tokens:,} tokens)"
    )
    if per_task:
        for task, r in result.per_task.items():
            say(f"  task {task:>2}: accuracy {r['accuracy']:.4f}  perplexity {r['perplexity']:8.4f}  ({r['answers']} answers)")


# ----------------------------------------------------------------------- eval
def _model_and_data(args, say=print):
    """The model of ``checkpoint`` / ``--pretrained`` and the data to read: ``--data`` if given, else the run's
    own data for a checkpoint and the generated stories for a shipped model (whose training data lies elsewhere)."""
    from dataclasses import replace

    from fwm_rl.babi.catbabi import DataSpec
    from fwm_rl.babi.pretrained import load_model

    model, vocab, config, spec = load_model(args.checkpoint, args.pretrained, args.device)
    if args.data is not None:
        spec = replace(
            spec if args.pretrained is None else DataSpec(),
            path=str(Path(args.data).resolve()),
            variant=args.variant,
            allow_missing=args.allow_missing,
            fill_missing_from=None,
        )
    elif args.pretrained is not None:
        spec = DataSpec()
        say(
            f"no --data given: reading the built-in generated stories ({args.pretrained} was trained on other data; "
            "pass --data with the official bAbI files for its figures)"
        )
    return model, vocab, config, spec


def _eval(args) -> int:
    from fwm_rl.babi.batching import eval_segments
    from fwm_rl.babi.catbabi import load_catbabi
    from fwm_rl.babi.trainer import evaluate

    say = (lambda *a, **k: None) if args.json else print
    model, vocab, config, spec = _model_and_data(args, say)
    batch_size = config.test_batch_size if args.batch_size is None else args.batch_size
    say(f"data: {spec.describe()}")
    split = load_catbabi(spec, splits=(args.split,), vocab=vocab).splits[args.split]
    segs = eval_segments(split, batch_size, config.bptt, vocab.eos, vocab.pad)
    result = evaluate(model, segs, config.mode, next(model.parameters()).device)
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.pretrained or str(args.checkpoint),
                    "split": args.split,
                    "data": spec.describe(),
                    "batch_size": batch_size,
                    "accuracy": result.answer_accuracy,
                    "perplexity": result.answer_perplexity,
                    "answers": result.answers,
                    "tokens": result.tokens,
                    "per_task": {
                        str(t): {"accuracy": r["accuracy"], "perplexity": r["perplexity"], "answers": r["answers"]}
                        for t, r in result.per_task.items()
                    },
                },
                indent=2,
            )
        )
    else:
        _print_result(result, f"{args.split} (batch size {batch_size})", per_task=args.per_task)
    return 0


# -------------------------------------------------------------------- explain
def _explain(args) -> int:
    from fwm_rl.babi.explain import explain_model, plot_explanation

    ex = explain_model(
        *_model_and_data(args),
        split=args.split,
        task=args.task,
        index=args.index,
        window=args.window,
        source=str(args.checkpoint or args.pretrained),
    )
    out = plot_explanation(ex, args.out)
    print(" ".join(ex.words))
    print(f"task {ex.task}: answer {ex.answer!r}, predicted {ex.predicted!r}; heatmap written to {out}")
    return 0


# ----------------------------------------------------------------------- plot
def _plot(args) -> int:
    from fwm_rl.babi.curves import plot_learning_curves

    print(f"wrote {plot_learning_curves(args.run_dirs, args.out, args.labels)}")
    return 0


# --------------------------------------------------------------------- answer
def _answer(args) -> int:
    import sys

    from fwm_rl.babi.answer import answer_questions
    from fwm_rl.babi.pretrained import load_model

    model, vocab, config, _ = load_model(args.checkpoint, args.pretrained, args.device)
    if args.story in (None, "-"):
        text, source = sys.stdin.read(), "<stdin>"
    else:
        path = Path(args.story)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder; give the story as a bAbI-format text file (or - for standard input)")
        if not path.is_file():
            raise FileNotFoundError(
                f"story file {path} does not exist (give a bAbI-format text file, or - for standard input)"
            )
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text") from None
    answers = answer_questions(model, vocab, text, mode=config.mode, source=source)
    if not answers:
        raise ValueError(f"{source} asks no question: end a line with '?' (e.g. '2 Where is Mary?')")
    if args.json:
        print(json.dumps([{**a.__dict__, "correct": a.correct} for a in answers], indent=2))
        return 0
    for a in answers:
        verdict = "" if a.expected is None else ("  (right)" if a.correct else f"  (wrong: expected {a.expected})")
        print(f"line {a.line}: {a.question} {a.answer}  p={a.probability:.3f}{verdict}")
    return 0


def register(subparsers) -> None:
    """Add ``babi`` and its sub-commands to the ``fwm-rl`` parser."""
    babi = subparsers.add_parser("babi", help="catbAbI: concatenated bAbI stories, QA/LM training of FWM and LSTM models")
    sub = babi.add_subparsers(dest="babi_command", metavar="COMMAND", required=True)

    p = sub.add_parser("stats", help="stories, questions, tokens and vocabulary of bAbI data")
    _add_data_options(p)
    p.add_argument("--splits", type=_splits, default=SPLITS, help="comma-separated splits to read (default train,valid,test)")
    p.add_argument("--per-task", action="store_true", help="also print every task")
    p.set_defaults(func=_stats)

    p = sub.add_parser("generate", help="write generated bAbI-style stories in the official layout")
    p.add_argument("--out", required=True, help="output folder (gets tasks_1-20_v1-2/<variant>/)")
    p.add_argument(
        "--variant", choices=VARIANTS, default="en-valid-10k", help="layout to write (default en-valid-10k, the paper's)"
    )
    p.add_argument(
        "--stories",
        type=_ints,
        default=None,
        metavar="TRAIN,VALID,TEST",
        help="stories per task and split (TRAIN,TEST for en / en-10k)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the generated stories (default 0)")
    p.add_argument("--tasks", type=_ints, default=None, help="only these tasks (default 1-20)")
    p.add_argument("--overwrite", action="store_true", help="replace task files that exist there (refused otherwise)")
    p.set_defaults(func=_generate)

    p = sub.add_parser("train", help="train an FWM or LSTM model on catbAbI")
    add_options(p, CatbAbIModelConfig, ["memory"], choices={"memory": MEMORIES})
    _add_data_options(p)
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="the model and training settings (default: paper with --data, small on generated data): "
        + "; ".join(f"{key}: {preset.description}" for key, preset in PRESETS.items()),
    )
    by_preset = {name for preset in PRESETS.values() for run in preset.runs.values() for name in run} - {"memory"}
    defaults = dict.fromkeys(by_preset, "default: the preset's")
    add_options(p, CatbAbIModelConfig, [n for n in MODEL_OPTIONS if n != "memory"], defaults=defaults)
    run_options = add_run_options(p, CatbAbIConfig, out="runs/babi-MEMORY-MODE")
    add_options(
        p,
        CatbAbIConfig,
        [n for n in TRAIN_OPTIONS if n not in run_options],
        choices={"mode": MODES, "amp": AMP_MODES},
        defaults=defaults,
    )
    add_trust_option(p)
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="answer accuracy of a run's checkpoint or a shipped model on a valid or test stream")
    _add_model_options(p)
    p.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default test)")
    p.add_argument(
        "--data", help="official bAbI data to read (default: a run's own data; for --pretrained the generated stories)"
    )
    p.add_argument("--variant", choices=VARIANTS, help="variant inside --data (default en-valid-10k)")
    p.add_argument("--allow-missing", action="store_true", help="go on without task files missing from the split")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="parallel streams, each from a zero state (default: the run's test batch size, 1 = the paper's appendix D)",
    )
    p.add_argument("--per-task", action="store_true", help="also print every task")
    p.add_argument("--json", action="store_true", help="print the figures as JSON: accuracy, perplexity, per_task")
    add_trust_option(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("explain", help="Figure-3-style heatmap of the FWM's reads at one question")
    _add_model_options(p)
    p.add_argument(
        "--data", help="official bAbI data to read (default: a run's own data; for --pretrained the generated stories)"
    )
    p.add_argument("--variant", choices=VARIANTS, help="variant inside --data (default en-valid-10k)")
    p.add_argument("--allow-missing", action="store_true", help="go on without task files missing from the split")
    p.add_argument("--out", default="babi-explain.png", help="PNG to write")
    p.add_argument(
        "--split", choices=("valid", "test"), default="valid", help="stream the question comes from (default valid)"
    )
    p.add_argument("--task", type=int, default=None, help="pick a question of this task (e.g. 15, deduction)")
    p.add_argument("--index", type=int, default=0, help="which such question in the stream")
    p.add_argument("--window", type=int, default=60, help="at most this many words back")
    add_trust_option(p)
    p.set_defaults(func=_explain)

    p = sub.add_parser("plot", help="learning curves: validation answer accuracy against steps and hours of training")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="catbAbI run folders")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per run (default: the folder names)")
    p.add_argument("--out", default="babi-curves.png", help="PNG to write (default babi-curves.png)")
    p.set_defaults(func=_plot)

    p = sub.add_parser(
        "answer",
        help="answer the questions of a story you type (bAbI format), with probabilities",
        description="Read a story and questions in bAbI format, one per line ('1 Mary went to the kitchen.', "
        "'2 Where is Mary?', optionally a tab and the expected answer), from a file or standard input, "
        "and print the model's answer to each question with its probability.",
    )
    p.add_argument("story", nargs="?", help="bAbI-format text file (default, or -: standard input)")
    p.add_argument("--checkpoint", help="a catbAbI run folder or its checkpoint.pt")
    p.add_argument("--pretrained", metavar="NAME", help="a model shipped with the package (see docs/babi.md), e.g. fwm-qa")
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    add_device_option(p, CatbAbIConfig)
    add_trust_option(p)
    p.set_defaults(func=_answer)
