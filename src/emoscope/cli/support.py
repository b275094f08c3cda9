"""``emoscope respond``: the supporter's next turn, written by an LLM guided by emoscope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from emoscope.errors import EmoscopeError

__all__ = ["build_backend", "register", "respond"]


def build_backend(
    backend: str,
    model: str,
    *,
    base_url: str | None = None,
    cache: str | None = None,
    repetition_penalty: float | None = None,
) -> Any:
    """The chat backend of ``respond`` (``hf``: a local folder or Hub id; ``openai``: a server).

    A local model decodes with ``repetition_penalty`` (default
    :data:`~emoscope.support.respond.REPLY_REPETITION_PENALTY`); a server keeps its own.
    """
    from emoscope.llm.base import load_backend
    from emoscope.support.respond import REPLY_REPETITION_PENALTY

    kwargs: dict[str, Any] = {"cache": cache}
    if backend == "openai":
        kwargs["base_url"] = base_url
    elif base_url is not None:
        raise EmoscopeError("--base-url applies to --backend openai only")
    if backend == "hf":
        kwargs["repetition_penalty"] = (
            REPLY_REPETITION_PENALTY if repetition_penalty is None else repetition_penalty
        )
    elif repetition_penalty is not None:
        raise EmoscopeError("--repetition-penalty applies to --backend hf only")
    return load_backend(backend, model, **kwargs)


def respond(
    dialogue: Annotated[
        Path, typer.Argument(help="Dialogue file (JSON, JSON Lines or CSV; one dialogue).")
    ],
    model: Annotated[
        str, typer.Option("--model", "-m", help="LLM: model folder, Hub id or server model name.")
    ],
    backend: Annotated[str, typer.Option(help="LLM backend: hf or openai.")] = "hf",
    strategy: Annotated[
        str,
        typer.Option(
            help="auto (the planner's choice), llm (the LLM's own, by label scoring; hf "
            "backend) or one of the 8 ESConv strategies."
        ),
    ] = "auto",
    plugin: Annotated[
        bool,
        typer.Option(
            "--plugin/--no-plugin", help="Put emoscope's reading of the seeker in the prompt."
        ),
    ] = True,
    seeker: Annotated[
        str | None,
        typer.Option(
            help="The seeker's speaker name [default: 'seeker', else the last speaker].",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="openai: server URL.", show_default=False)
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Reply length cap.")] = 60,
    repetition_penalty: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="hf: repetition penalty of the reply [default: 1.1, chosen on an ESConv pilot].",
            show_default=False,
        ),
    ] = None,
    planner: Annotated[
        Path | None,
        typer.Option(
            help="Strategy planner folder [default: the shipped one].", show_default=False
        ),
    ] = None,
    cache: Annotated[
        str | None, typer.Option(help="Response cache file (SQLite).", show_default=False)
    ] = None,
) -> None:
    """Write the supporter's next turn of DIALOGUE; print JSON (reply, strategy, emotions,
    prompt)."""
    from emoscope.datasets import read_dialogue_file
    from emoscope.datasets.esconv import normalize_strategy
    from emoscope.support.respond import Supporter
    from emoscope.support.state import find_seeker

    dialogues = read_dialogue_file(dialogue)
    if len(dialogues) != 1:
        raise EmoscopeError(f"{dialogue}: holds {len(dialogues)} dialogues; respond takes one")
    (conv,) = dialogues
    # Check everything the user typed before loading any model.
    if strategy not in ("auto", "llm"):
        normalize_strategy(strategy)
    find_seeker(conv, seeker)
    if strategy == "llm" and backend != "hf":
        raise EmoscopeError("--strategy llm needs label scoring: use --backend hf")
    llm = build_backend(
        backend, model, base_url=base_url, cache=cache, repetition_penalty=repetition_penalty
    )
    supporter = Supporter(llm, planner=planner, max_new_tokens=max_new_tokens)
    out = supporter.respond(conv, strategy=strategy, plugin=plugin, seeker=seeker)
    typer.echo(json.dumps(out.to_dict(), indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add ``respond`` to ``app``."""
    app.command("respond")(respond)
