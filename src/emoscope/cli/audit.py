"""``emoscope audit``: the emotion report card of a language model (:mod:`emoscope.audit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emoscope.cli._common import DataRootOpt, ProgressOpt, note

__all__ = ["audit_command", "register"]


def audit_command(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Short name (smollm2-135m-instruct, gemma-3-270m), folder, .gguf file, Hub id, "
            "or the server's model name with --backend openai.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Report folder [default: runs/audit/MODEL].", show_default=False
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="hf (local weights) or openai (a server; black box).")
    ] = "hf",
    base_url: Annotated[
        str | None,
        typer.Option(help="openai: server URL, e.g. http://localhost:8000/v1.", show_default=False),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="openai: bearer token [default: $OPENAI_API_KEY].", show_default=False),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Small sizes (a first look; see the README for measured times)."
        ),
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            help="Run only these sections (comma-separated): recognition, benchmarks, stimuli, "
            "probes, steering.",
            show_default=False,
        ),
    ] = None,
    skip: Annotated[
        str | None, typer.Option(help="Skip these sections (comma-separated).", show_default=False)
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            "-n",
            min=1,
            help="MELD test utterances read [default: by size].",
            show_default=False,
        ),
    ] = None,
    data_root: DataRootOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="LLM response and cue cache [default: ~/.cache/emoscope/llm].",
            show_default=False,
        ),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            help="Recogniser judging steered replies [default: emoscope's default model].",
            show_default=False,
        ),
    ] = None,
    bf16: Annotated[
        bool | None,
        typer.Option(
            "--bf16/--fp32",
            help="hf: bfloat16 autocast for inference [default: where the CPU has native bf16].",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch threads.", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    progress: ProgressOpt = True,
) -> None:
    """Audit a language model's emotional behaviour: one folder with audit.json, report.md and
    a self-contained report.html."""
    from emoscope._io import check_writable
    from emoscope.audit import AuditConfig, open_target, run_audit, select_sections
    from emoscope.cli._common import slug
    from emoscope.recognizers.llm import default_cache_dir

    sections = select_sections(only, skip)
    config = AuditConfig(
        size="quick" if quick else "default",
        sections=sections,
        data_root=None if data_root is None else str(data_root),
        meld_limit=limit,
        seed=seed,
        bf16=bf16,
        judge=judge,
    )
    folder = out or Path("runs", "audit", slug(Path(model.rstrip("/")).name, "model"))
    check_writable(folder, folder=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    llm_cache = cache_dir or default_cache_dir()
    target = open_target(
        model, backend=backend, base_url=base_url, api_key=api_key, bf16=config.bf16,
        cache=llm_cache / "responses.sqlite",
    )  # fmt: skip
    note(f"auditing {target.name} ({backend}); sections: {', '.join(sections)}")
    audit = run_audit(target, config, folder, progress=progress, say=note, llm_cache=llm_cache)
    note(f"wrote {folder}/report.md, report.html and audit.json in {audit['seconds']:.0f} s")


def register(app: typer.Typer) -> None:
    """Add ``audit`` to ``app``."""
    app.command("audit")(audit_command)
