"""The model an audit is about: a local causal LM (open weights) or a server (black box).

:func:`open_target` loads or reaches the model before any work starts, so that an unknown
model, a file that is not a causal LM or an unreachable server ends the audit at once with one
clear line, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoscope.errors import EmoscopeError
from emoscope.llm.base import ChatBackend, can_score

if TYPE_CHECKING:
    from emoscope.activations import LoadedModel

__all__ = [
    "AuditTarget",
    "open_target",
]

AUDIT_BACKENDS = ("hf", "openai")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@dataclass
class AuditTarget:
    """A model under audit.

    Attributes:
        model: the model as given (short name, folder, ``.gguf`` file, Hub id or server
            model name).
        kind: ``hf`` (weights loaded here) or ``openai`` (a server, black box).
        backend: the chat backend answering prompts.
        base_url: the server of an ``openai`` target.
    """

    model: str
    kind: str
    backend: ChatBackend
    base_url: str | None = None
    _lm: Any = field(default=None, repr=False)

    @property
    def open_weight(self) -> bool:
        """Whether the weights are here (probes and steering need them)."""
        return self.kind == "hf"

    @property
    def scores(self) -> bool:
        """Whether the backend scores given answers (label scoring; :func:`can_score`)."""
        return can_score(self.backend)

    @property
    def name(self) -> str:
        """The model's name as the backend reports it."""
        return str(self.backend.model)

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the target."""
        out: dict[str, Any] = {
            "model": self.model,
            "name": self.name,
            "backend": self.kind,
            "open_weight": self.open_weight,
            "scores_choices": self.scores,
        }
        resolved = getattr(self.backend, "resolved", None)
        if resolved is not None:
            out["source"] = resolved.source
            out["location"] = resolved.location
        if self.base_url is not None:
            out["base_url"] = self.base_url
        return out

    def loaded_model(self) -> LoadedModel:
        """The weights for reading activations and steering (loaded on first use).

        Raises:
            EmoscopeError: a black-box target, or a model that is not a causal LM.
        """
        if not self.open_weight:
            raise EmoscopeError(f"{self.model}: a {self.kind} model has no weights to read")
        if self._lm is None:
            from emoscope.activations import load_model

            lm = load_model(self.model)
            if not lm.causal:
                raise EmoscopeError(f"{self.model}: not a causal language model")
            self._lm = lm
        return self._lm


def open_target(
    model: str,
    *,
    backend: str = "hf",
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    cache: str | Path | None = None,
    bf16: bool | None = None,
    batch_size: int = 16,
) -> AuditTarget:
    """Load the model (``hf``) or check that the server answers (``openai``).

    ``bf16``: autocast for the hf backend; ``None`` where the CPU has native bf16.

    Raises:
        EmoscopeError: an unknown backend or model, weights that are not a causal LM, or a
            server that does not answer; the message is one line naming the model.
    """
    if backend not in AUDIT_BACKENDS:
        raise EmoscopeError(
            f"unknown backend {backend!r}; expected one of: {', '.join(AUDIT_BACKENDS)}"
        )
    if not model or not model.strip():
        raise EmoscopeError("no model given; expected a short name, folder, .gguf file or Hub id")
    if backend == "hf":
        from emoscope.llm.hf import HFBackend
        from emoscope.recognizers.precision import resolve_bf16

        bf16 = resolve_bf16(bf16)
        if base_url is not None:
            raise EmoscopeError("--base-url is for --backend openai")
        try:
            be: ChatBackend = HFBackend(
                model, device="cpu", batch_size=batch_size, bf16_autocast=bf16, cache=cache
            )
        except EmoscopeError as e:
            raise EmoscopeError(f"cannot audit {model!r}: {_one_line(e)}") from None
        except Exception as e:  # a broken file fails deep inside its reader
            raise EmoscopeError(
                f"cannot audit {model!r}: not a loadable causal LM ({type(e).__name__}: "
                f"{_one_line(e)})"
            ) from None
        return AuditTarget(model, "hf", be)
    from emoscope.llm.openai import OpenAIBackend

    try:
        probe = OpenAIBackend(
            model, base_url=base_url, api_key=api_key, timeout=min(timeout, 15.0), max_retries=0
        )
        url = probe.base_url
        try:
            probe.generate([[{"role": "user", "content": "Say OK."}]], max_new_tokens=1)
        finally:
            probe.close()
    except EmoscopeError as e:
        where = base_url or "the configured server"
        raise EmoscopeError(f"cannot audit {model!r} at {where}: {_one_line(e)}") from None
    be = OpenAIBackend(model, base_url=base_url, api_key=api_key, timeout=timeout, cache=cache)
    return AuditTarget(model, "openai", be, base_url=url)
