"""``emoscope probe``, ``emoscope steer`` and ``emoscope stimuli``: looking inside models.

Registered on the main CLI by :func:`register`. Heavy imports (torch, transformers) happen
inside the commands. See :mod:`emoscope.probe`, :mod:`emoscope.steer` and
:mod:`emoscope.stimuli` for the methods and their papers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from emoscope.cli._common import DataRootOpt, note
from emoscope.errors import EmoscopeError

__all__ = ["probe_command", "register", "steer_command", "stimuli_command"]


def _parse_ints(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise EmoscopeError(f"bad {what} {text!r}; expected comma-separated integers") from None
    if not out:
        raise EmoscopeError(f"bad {what} {text!r}; expected comma-separated integers")
    return out


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise EmoscopeError(f"bad {what} {text!r}; expected comma-separated numbers") from None
    if not out:
        raise EmoscopeError(f"bad {what} {text!r}; expected comma-separated numbers")
    return out


def _name_value(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise EmoscopeError(f"bad {what} {item!r}; expected NAME=TEXT")
        out[name.strip()] = value.strip()
    return out


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model folder or Hub id [default: all-MiniLM-L6-v2].",
        show_default=False,
    ),
]  # fmt: skip
DeviceOpt = Annotated[str, typer.Option("--device", help="Torch device.")]


# --------------------------------------------------------------------------------------------
# probe


def probe_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for probe.json and the PNG.")],
    model: ModelOpt = None,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Labelled dataset (goemotions, meld ...).")
    ] = "goemotions",
    taxonomy: Annotated[
        str | None,
        typer.Option("--taxonomy", "-t", help="Map gold labels into this taxonomy first."),
    ] = None,
    layers: Annotated[
        str, typer.Option(help="Layers: all, last, mid, 3, 11-20 or 0,2,4-6 (0 = embeddings).")
    ] = "all",
    probe: Annotated[str, typer.Option("--probe", help="Probe: linear or mlp.")] = "linear",
    pooling: Annotated[str, typer.Option(help="Pooling: auto, last, mean or first.")] = "auto",
    control: Annotated[
        bool, typer.Option("--control/--no-control", help="Also probe a random-init copy.")
    ] = True,
    max_train: Annotated[
        int, typer.Option(min=1, help="Training texts (random subsample).")
    ] = 8000,
    max_test: Annotated[int, typer.Option(min=1, help="Test texts (random subsample).")] = 2000,
    train_split: Annotated[str, typer.Option(help="Split to train probes on.")] = "train",
    test_split: Annotated[str, typer.Option(help="Split to score probes on.")] = "test",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Texts per forward pass.")] = 32,
    max_length: Annotated[int, typer.Option(min=2, help="Tokens per text (truncation).")] = 128,
    class_weight: Annotated[
        str | None, typer.Option(help="'balanced' to weight classes inversely to frequency.")
    ] = None,
    chat_format: Annotated[
        bool, typer.Option("--chat-format", help="Wrap texts as a user chat turn.")
    ] = False,
    n_boot: Annotated[int, typer.Option(min=10, help="Bootstrap resamples for the CIs.")] = 1000,
    stream: Annotated[
        bool,
        typer.Option("--stream", help="Stream activations to OUT/activations (float16 .npy)."),
    ] = False,
    zero_shot_backend: Annotated[
        str | None,
        typer.Option(
            help="Chat backend (name or 'module:Factory') for the zero-shot prompting baseline; "
            "called with --model.",
            show_default=False,
        ),
    ] = None,
    zero_shot_limit: Annotated[int, typer.Option(min=1, help="Test texts for zero-shot.")] = 200,
    persistence: Annotated[
        str | None,
        typer.Option(
            help="Token offsets for the persistence curve, e.g. '0,1,2,4,8,16,32' (decoders).",
            show_default=False,
        ),
    ] = None,
    system_prompt: Annotated[
        list[str] | None,
        typer.Option(
            "--system-prompt",
            help="NAME=TEXT (repeatable): measure how this system prompt moves the read-out.",
            show_default=False,
        ),
    ] = None,
    analysis_n: Annotated[
        int, typer.Option(min=1, help="Test texts used for persistence / system prompts.")
    ] = 200,
    data_root: DataRootOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Train per-layer emotion probes and write OUT/probe.json and OUT/layer_curve.png."""
    from emoscope._io import write_json
    from emoscope.probe import malleability, persistence_curve, plot_layer_curves, run_probe

    systems = _name_value(system_prompt, "--system-prompt")
    offsets = _parse_ints(persistence, "--persistence offsets") if persistence else None
    backend = None
    if zero_shot_backend is not None:
        from emoscope.stimuli import load_backend

        backend = load_backend(zero_shot_backend, model)
    run = run_probe(
        model, dataset, taxonomy=taxonomy, layers=layers, kind=probe, pooling=pooling,
        control=control, max_train=max_train, max_test=max_test, train_split=train_split,
        test_split=test_split, seed=seed, batch_size=batch_size, max_length=max_length,
        class_weight=class_weight, chat_format=chat_format or bool(systems), data_root=data_root,
        device=device, activations_dir=out / "activations" if stream else None, n_boot=n_boot,
        zero_shot_backend=backend, zero_shot_limit=zero_shot_limit, progress=note,
    )  # fmt: skip
    report = run.report
    n = min(analysis_n, len(run.data.test_texts))
    if offsets is not None:
        report["persistence"] = persistence_curve(
            run.lm, run.probes, run.data.test_texts[:n], run.data.test_y[:n].tolist(),
            offsets=offsets, chat_format=bool(report["chat_format"]),
        )  # fmt: skip
    if systems:
        report["malleability"] = malleability(
            run.lm, run.probes, run.data.labels, run.data.test_texts[:n],
            run.data.test_y[:n].tolist(), systems,
        )  # fmt: skip
    write_json(out / "probe.json", report)
    curves = [("model", report["curves"]["model"])]
    if "control" in report["curves"]:
        curves.append(("random-init control", report["curves"]["control"]))
    title = f"{Path(report['model']).name or report['model']} on {dataset}"
    plot_layer_curves(
        [(title, curves)], out / "layer_curve.png",
        baselines=[{"majority class": report["majority_baseline"]}],
    )  # fmt: skip
    _print_probe_table(report)
    note(f"wrote {out / 'probe.json'} and {out / 'layer_curve.png'}")


def _print_probe_table(report: dict[str, Any]) -> None:
    model = {s["layer"]: s for s in report["curves"]["model"]["scores"]}
    ctrl = {s["layer"]: s for s in report["curves"].get("control", {}).get("scores", [])}
    head = f"{'layer':>5}  {'accuracy [95% CI]':<24} {'macro-F1 [95% CI]':<24}"
    if ctrl:
        head += f" {'control acc':>11} {'control F1':>10}"
    typer.echo(head)
    for lay, s in model.items():
        acc = f"{s['accuracy']:.3f} [{s['accuracy_ci'][0]:.3f}, {s['accuracy_ci'][1]:.3f}]"
        f1 = f"{s['macro_f1']:.3f} [{s['macro_f1_ci'][0]:.3f}, {s['macro_f1_ci'][1]:.3f}]"
        line = f"{lay:>5}  {acc:<24} {f1:<24}"
        if lay in ctrl:
            line += f" {ctrl[lay]['accuracy']:>11.3f} {ctrl[lay]['macro_f1']:>10.3f}"
        typer.echo(line)
    maj = report["majority_baseline"]
    typer.echo(f"majority class ({maj['label']}): accuracy {maj['accuracy']:.3f}")
    if "zero_shot" in report:
        zs = report["zero_shot"]
        typer.echo(
            f"zero-shot prompting (n={zs['n']}): accuracy {zs['accuracy']:.3f}, "
            f"macro-F1 {zs['macro_f1']:.3f}, unparsed {zs['unparsed']}"
        )
    if "persistence" in report:
        for lay, rows in report["persistence"]["layers"].items():
            pts = ", ".join(f"{r['offset']}:{r['accuracy']:.2f}" for r in rows)
            typer.echo(f"persistence layer {lay} (offset:accuracy): {pts}")
    if "malleability" in report:
        for name, cond in report["malleability"]["conditions"].items():
            best = max(cond["layers"], key=lambda k: int(k))
            row = cond["layers"][best]
            typer.echo(
                f"system prompt {name!r} (layer {best}): accuracy {row['accuracy']:.3f}, "
                f"changed vs none {row['changed_vs_none']:.3f}"
            )


# --------------------------------------------------------------------------------------------
# steer


def _read_prompts(prompts: list[str] | None) -> list[str]:
    if prompts and prompts != ["-"]:
        lines = prompts
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise EmoscopeError("no prompt: give prompts as arguments or pipe lines on stdin")
        lines = sys.stdin.read().splitlines()
    out = [p.strip() for p in lines if p.strip()]
    if not out:
        raise EmoscopeError("no prompt: every prompt is empty")
    return out


def _emotion_weights(emotions: list[str], alpha: float) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in emotions:
        for part in item.split(","):
            name, sep, value = part.partition("=")
            if not name.strip():
                raise EmoscopeError(f"bad --emotion {item!r}; expected NAME or NAME=ALPHA")
            try:
                weights[name.strip().lower()] = float(value) if sep else alpha
            except ValueError:
                raise EmoscopeError(f"bad alpha in --emotion {item!r}; expected a number") from None
    return weights


def steer_command(
    prompts: Annotated[
        list[str] | None,
        typer.Argument(help="Prompts; without any (or with '-') lines are read from stdin."),
    ] = None,
    model: ModelOpt = None,
    emotion: Annotated[
        list[str] | None,
        typer.Option(
            "--emotion",
            "-e",
            help="Emotion to steer towards; repeat or write joy=8,surprise=3 to combine.",
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Strength for emotions given without one [default: the directions file's "
            "chosen alpha, else 8].",
            show_default=False,
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Layers to steer, e.g. 11-20 [default: the directions file's chosen layers, "
            "else the middle third].",
            show_default=False,
        ),
    ] = None,
    positions: Annotated[
        str, typer.Option(help="Token positions: all, prompt, last, generated or last+generated.")
    ] = "all",
    directions: Annotated[
        Path | None,
        typer.Option(
            help="Directions file (.safetensors); default: computed from the model's "
            "own states on emoscope's elicitation prompts.",
            show_default=False,
        ),
    ] = None,
    directions_from: Annotated[
        str | None,
        typer.Option(
            help="Build the directions from a labelled dataset instead: a known name "
            "(goemotions, meld ...) or a CSV/TSV/JSON/JSONL file with text and label columns.",
            show_default=False,
        ),
    ] = None,
    directions_taxonomy: Annotated[
        str, typer.Option(help="Taxonomy of --directions-from labels.")
    ] = "ekman",
    directions_split: Annotated[
        str, typer.Option(help="Split of a known --directions-from dataset.")
    ] = "train",
    max_examples: Annotated[
        int, typer.Option(min=2, help="Texts of --directions-from used (classes take turns).")
    ] = 2000,
    data_root: DataRootOpt = None,
    save_directions: Annotated[
        Path | None, typer.Option(help="Write the directions used here.", show_default=False)
    ] = None,
    method: Annotated[str, typer.Option(help="Direction method: diffmean or pca.")] = "diffmean",
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Tokens to generate.")] = 40,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Use the chat template.")] = True,
    compare: Annotated[
        bool, typer.Option("--compare/--no-compare", help="Also show the unsteered output.")
    ] = True,
    recognizer: Annotated[
        str | None,
        typer.Option(
            "--recognizer", "-r", help="Recognise the emotion of the outputs.", show_default=False
        ),
    ] = None,
    eval_alphas: Annotated[
        str | None,
        typer.Option(
            help="Evaluate these alphas, e.g. '0,4,8': expression accuracy (with "
            "--recognizer, default lexicon) and perplexity.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results as JSON.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: DeviceOpt = "cpu",
) -> None:
    """Generate from a model while steering it along emotion directions."""
    from emoscope._io import write_json
    from emoscope.activations import load_model, parse_layers
    from emoscope.steer import (
        DIRECTION_METHODS,
        EmotionDirections,
        build_directions,
        directions_from_dataset,
        evaluate_steering,
        generate,
    )

    texts = _read_prompts(prompts)
    if method not in DIRECTION_METHODS:
        raise EmoscopeError(f"unknown method {method!r}; expected diffmean or pca")
    if directions is not None and directions_from is not None:
        raise EmoscopeError("give --directions or --directions-from, not both")
    dirs = EmotionDirections.load(directions) if directions is not None else None
    labelled = None
    if directions_from is not None:
        from emoscope.datasets import load_dataset, read_labelled_file

        if Path(directions_from).exists():
            labelled = read_labelled_file(directions_from, directions_taxonomy)
        else:
            labelled = load_dataset(
                directions_from, directions_split, root=data_root, taxonomy=directions_taxonomy
            )
    meta = dirs.meta if dirs is not None else {}
    if alpha is None:
        alpha = float(meta.get("default_alpha", 8.0))
    weights = _emotion_weights(emotion or ["joy"], alpha)
    lm = load_model(model, device=device)
    if not lm.causal:
        raise EmoscopeError(f"{lm.name} is not a causal language model; steering needs generation")
    if layers is not None:
        chosen = parse_layers(layers, lm.n_layers, allow_embeddings=False)
    elif meta.get("default_layers"):
        chosen = [int(x) for x in meta["default_layers"]]
    else:
        third = max(1, lm.n_layers // 3)
        chosen = list(range(third + 1, max(third + 1, 2 * third) + 1))
    if labelled is not None:
        note(f"computing {method} directions from {labelled.name} ({len(labelled)} texts)")
        dirs = directions_from_dataset(
            lm, labelled, max_examples=max_examples, method=method, layers=chosen, chat=chat,
            seed=seed,
        )  # fmt: skip
    elif dirs is None:
        note(f"computing {method} directions from the elicitation prompts")
        dirs = build_directions(lm, method=method, layers=chosen, chat=chat, seed=seed)
    missing = [e for e in weights if e not in dirs.emotions]
    if missing:
        raise EmoscopeError(
            f"no direction for {', '.join(missing)}; the directions have: "
            f"{', '.join(dirs.emotions)}"
        )
    if save_directions is not None:
        dirs.save(save_directions)
        note(f"wrote {save_directions}")
    plan = dirs.plan(weights, chosen)
    result: dict[str, Any] = {"model": lm.name, "weights": weights, "layers": chosen,
                              "positions": positions, "method": dirs.method}  # fmt: skip
    steered = generate(
        lm, texts, plan=plan, positions=positions, chat=chat, max_new_tokens=max_new_tokens,
        seed=seed,
    )  # fmt: skip
    plain = (
        generate(lm, texts, chat=chat, max_new_tokens=max_new_tokens, seed=seed)
        if compare
        else None
    )
    labels: list[str] | None = None
    if recognizer is not None:
        from emoscope.evaluate import map_prediction
        from emoscope.recognizers import load_recognizer

        rec = load_recognizer(recognizer)
        labels = [
            map_prediction(p, "ekman").label for p in rec.predict([t or "." for t in steered])
        ]
    result["outputs"] = [
        {"prompt": p, "steered": s}
        | ({} if plain is None else {"unsteered": plain[i]})
        | ({} if labels is None else {"recognised": labels[i]})
        for i, (p, s) in enumerate(zip(texts, steered, strict=True))
    ]
    for row in result["outputs"]:
        typer.echo(f"prompt:    {row['prompt']}")
        if "unsteered" in row:
            typer.echo(f"unsteered: {row['unsteered']}")
        tag = f" [{row['recognised']}]" if "recognised" in row else ""
        typer.echo(f"steered:   {row['steered']}{tag}")
        typer.echo("")
    if eval_alphas is not None:
        if len(weights) != 1:
            raise EmoscopeError("--eval-alphas evaluates one emotion; give a single --emotion")
        target = next(iter(weights))
        ev = evaluate_steering(
            lm, dirs, target, texts, alphas=_parse_floats(eval_alphas, "--eval-alphas"),
            layers=chosen, positions=positions, recognizer=recognizer or "lexicon", chat=chat,
            max_new_tokens=max_new_tokens,
        )  # fmt: skip
        result["evaluation"] = ev
        typer.echo(f"{'alpha':>6}  {'expression acc.':>15}  {'perplexity (median)':>19}")
        for r in ev["rows"]:
            acc, ppl = r["expression_accuracy"], r["perplexity_median"]
            typer.echo(f"{r['alpha']:>6g}  {acc:>15.3f}  {ppl:>19.2f}")
    if out is not None:
        write_json(out, result)
        note(f"wrote {out}")


# --------------------------------------------------------------------------------------------
# stimuli


def stimuli_command(
    backend: Annotated[
        str,
        typer.Option(
            help="Chat backend: a name from emoscope.llm (hf, openai ...) or "
            "'module:Factory' called with --model."
        ),
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model for the backend.", show_default=False)
    ] = None,
    task: Annotated[
        str,
        typer.Option(help="sentiment, emotion, arithmetic, emobench-eu, emobench-ea or eqbench."),
    ] = "sentiment",
    stimuli: Annotated[
        str,
        typer.Option(
            help="Stimuli: all, emotionprompt, negativeprompt, EP02, EP01-EP05, ... or "
            "'none' for a plain benchmark run."
        ),
    ] = "all",
    heart: Annotated[
        int, typer.Option(min=0, help="Also run N rounds of plain vs HEART feedback.")
    ] = 0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use the first N items.", show_default=False)
    ] = None,
    language: Annotated[str, typer.Option(help="EmoBench language: en or zh.")] = "en",
    revise: Annotated[
        bool, typer.Option("--revise", help="EQ-Bench: first pass, critique, revised scores.")
    ] = False,
    scoring: Annotated[
        str,
        typer.Option(
            help="generate (answers are generated and parsed) or label (multiple choice read off "
            "each choice's log-likelihood, as lm-evaluation-harness does; on eqbench, each "
            "intensity is the expected value of the model's 0-10 distribution). label needs "
            "a backend that scores answers (hf)."
        ),
    ] = "generate",
    batch_size: Annotated[int, typer.Option(min=1, help="Conversations per generate call.")] = 8,
    n_boot: Annotated[int, typer.Option(min=10, help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed for the statistics.")] = 0,
    keep_outputs: Annotated[
        bool, typer.Option("--keep-outputs", help="Store every answer in --out.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results as JSON.")] = None,
    data_root: DataRootOpt = None,
) -> None:
    """Compare answers with and without emotional stimuli (paired A/B with significance)."""
    from emoscope._io import write_json
    from emoscope.stimuli import load_backend, load_task, require_scorer, run_ab

    label = _check_scoring(scoring, task, heart=heart, revise=revise, keep=keep_outputs)
    if stimuli.strip().lower() == "none":
        llm = load_backend(backend, model)
        if label:
            require_scorer(llm)
        result = _benchmark_run(llm, task, language, revise, data_root, limit, batch_size, label)
        result.pop("correct", None)
    else:
        # The task first: a bad task name or missing data fails before a model is loaded.
        t = load_task(task, root=data_root, language=language, limit=limit, revise=revise)
        if label and t.questions is None:
            raise EmoscopeError(
                f"--scoring label A/B needs a multiple-choice task (sentiment, emotion, "
                f"emobench-eu, emobench-ea), not {task!r}"
            )
        llm = load_backend(backend, model)
        if label:
            require_scorer(llm)
        ab = run_ab(
            llm, t, stimuli, scoring="label" if label else "generate", heart=heart,
            batch_size=batch_size, n_boot=n_boot, seed=seed, keep_outputs=keep_outputs,
            progress=note,
        )  # fmt: skip
        typer.echo(
            f"task {ab.task}: {ab.n_items} items, plain-prompt score {ab.baseline_score:.3f}"
        )
        typer.echo(ab.format_table(), nl=False)
        typer.echo(
            "sig.: *** p<0.001, ** p<0.01, * p<0.05 (exact McNemar for right/wrong tasks, "
            "sign-flip permutation for graded ones); CI: paired bootstrap"
        )
        result = ab.to_dict()
    if out is not None:
        write_json(out, result)
        note(f"wrote {out}")


def _check_scoring(scoring: str, task: str, *, heart: int, revise: bool, keep: bool) -> bool:
    """Whether ``--scoring`` asks for label scoring; bad combinations fail before any model
    is loaded."""
    mode = scoring.strip().lower()
    if mode not in ("generate", "label"):
        raise EmoscopeError(f"unknown --scoring {scoring!r}; expected generate or label")
    if mode == "generate":
        return False
    if heart > 0:
        raise EmoscopeError("--heart needs generated answers: use --scoring generate")
    if revise:
        raise EmoscopeError("--revise needs generated answers: use --scoring generate")
    if keep:
        raise EmoscopeError("--keep-outputs keeps generated answers: use --scoring generate")
    if task.strip().lower() == "arithmetic":
        raise EmoscopeError("the arithmetic task is not multiple choice: use --scoring generate")
    return True


def _benchmark_run(
    llm: Any,
    task: str,
    language: str,
    revise: bool,
    data_root: Path | None,
    limit: int | None,
    batch_size: int,
    label: bool = False,
) -> dict[str, Any]:
    from emoscope.stimuli import load_task, run_ab, run_emobench, run_eqbench

    key = task.strip().lower()
    if key in ("emobench-eu", "emobench-ea"):
        res = run_emobench(
            llm, key[-2:].upper(), language=language, root=data_root, limit=limit,
            batch_size=batch_size, scoring="label" if label else "generate",
        )  # fmt: skip
        typer.echo(f"EmoBench {res['task']} ({language}), accuracy per category:")
        for cat, acc in res["accuracy"].items():
            typer.echo(f"  {cat:<28} {acc:.3f}  (n={res['n'][cat]})")
        if not label:
            typer.echo(f"  unparsed answers: {res['unparsed']}")
        return res
    if key == "eqbench":
        res = run_eqbench(
            llm, root=data_root, revise=revise, limit=limit, batch_size=batch_size,
            scoring="expected" if label else "generate",
        )  # fmt: skip
        how = "expected value of each 0-10 distribution" if label else res["used"]
        score = "none (no answer parsed)" if res["score"] is None else f"{res['score']:.2f}"
        typer.echo(
            f"EQ-Bench v2 score: {score} (parseable {res['parseable']}/"
            f"{res['n_questions']}, {how.replace('_', ' ')})"
        )
        return res
    ab = run_ab(
        llm, load_task(task, limit=limit), None, batch_size=batch_size,
        scoring="label" if label else "generate",
    )  # fmt: skip
    typer.echo(f"task {ab.task}: {ab.n_items} items, accuracy {ab.baseline_score:.3f}")
    return ab.to_dict()


def register(app: typer.Typer) -> None:
    """Add the ``probe``, ``steer`` and ``stimuli`` commands to ``app``."""
    app.command("probe")(probe_command)
    app.command("steer")(steer_command)
    app.command("stimuli")(stimuli_command)
