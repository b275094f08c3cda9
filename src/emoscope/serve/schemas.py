"""Request and response models of the HTTP API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import unicode_problem

__all__ = [
    "AnalyzeRequest",
    "AnalyzeResponse",
    "DialogueRequest",
    "DialogueResponse",
    "ErrorOut",
    "HealthResponse",
    "ModelsResponse",
    "PredictionOut",
    "RespondRequest",
    "RespondResponse",
]


def _valid_unicode(value: str) -> str:
    """Refuse strings that cannot be encoded as UTF-8 (lone surrogates such as ``\\ud800``)."""
    problem = unicode_problem(value)
    if problem:
        raise ValueError(f"{problem}; expected valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]

TaxonomyField = Annotated[
    Text | None,
    Field(
        description="Map the predictions into this taxonomy (goemotions, ekman, meld, emorynlp, "
        "plutchik). Default: the server's taxonomy.",
        examples=["ekman"],
    ),
]


class PredictionOut(BaseModel):
    """One prediction, as :meth:`emoscope.EmotionPrediction.to_dict` writes it."""

    taxonomy: str = Field(description="Name of the label taxonomy.")
    label: str = Field(description="The most probable label.")
    labels: list[str] = Field(description="Labels predicted present, best first.")
    probs: dict[str, float] = Field(description="Probability per label.")
    confidence: float = Field(ge=0, le=1, description="Probability that the top label is right.")
    multi_label: bool = Field(description="Whether probs are independent per-label values.")
    vad: list[float] | None = Field(
        min_length=3,
        max_length=3,
        description="Valence, arousal, dominance, each in [-1, 1]; null when not predicted.",
    )
    rationale: str | None = Field(default=None, description="Free-text reasoning, if any.")
    cues: dict[str, Any] | None = Field(
        default=None,
        description="Extra evidence, if any; 'attributions' holds word attributions "
        "[{word, weight, start, end}] when explain=true.",
    )
    language: str | None = Field(
        default=None, description="ISO 639-1 code of the detected language of the text."
    )
    warnings: list[str] | None = Field(
        default=None,
        description="Why the prediction may be unreliable, each 'key: explanation' "
        "(not-english, no-letters, context-truncated).",
    )

    @classmethod
    def from_prediction(cls, pred: EmotionPrediction) -> PredictionOut:
        """Wrap a prediction; keys that ``to_dict`` leaves out stay unset (and unserialised)."""
        return cls.model_validate(pred.to_dict())


class AnalyzeRequest(BaseModel):
    """Texts to analyse: exactly one of ``text`` and ``texts``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["I love it!", "This is awful."]}]},
    )

    text: Text | None = Field(default=None, description="One text.")
    texts: list[Text] | None = Field(default=None, description="Several texts, analysed apart.")
    taxonomy: TaxonomyField = None

    @model_validator(mode="after")
    def _one_of(self) -> AnalyzeRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) and 'texts' (a list)")
        if self.texts is not None and not self.texts:
            raise ValueError("'texts' is empty; expected at least one text")
        return self

    def items(self) -> list[str]:
        """The texts, in order."""
        return [self.text] if self.text is not None else list(self.texts or [])


class AnalyzeResponse(BaseModel):
    """One prediction per input text, in input order."""

    recognizer: str = Field(description="Name of the recogniser that made the predictions.")
    taxonomy: str = Field(description="Taxonomy of the predictions.")
    predictions: list[PredictionOut]


class UtteranceIn(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    speaker: Text | None = None
    id: Text | None = None


class DialogueRequest(BaseModel):
    """A conversation, oldest turn first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "d1",
                    "utterances": [
                        {"speaker": "Maya", "text": "I got the job!"},
                        {"speaker": "Sam", "text": "Oh. So you're really leaving."},
                    ],
                }
            ]
        },
    )

    id: Text | None = Field(default=None, description="An identifier echoed in the response.")
    utterances: list[UtteranceIn] = Field(min_length=1)
    taxonomy: TaxonomyField = None


class SupportUtteranceIn(UtteranceIn):
    """One turn of a support conversation; a supporter turn may name its strategy."""

    strategy: str | None = Field(default=None, description="ESConv strategy of the turn.")


class RespondRequest(BaseModel):
    """A support conversation whose next supporter turn the LLM writes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "utterances": [
                        {"speaker": "seeker", "text": "I failed my exam and I feel awful."},
                    ],
                    "strategy": "auto",
                }
            ]
        },
    )

    utterances: list[SupportUtteranceIn] = Field(min_length=1)
    strategy: str = Field(
        default="auto",
        description="auto (the planner's choice), llm (the LLM's own by label scoring; hf "
        "backend) or an ESConv strategy name.",
    )
    plugin: bool = Field(default=True, description="Put emoscope's reading in the prompt.")
    seeker: str | None = Field(
        default=None, description="The seeker's speaker name [default: 'seeker', else last]."
    )


class RespondResponse(BaseModel):
    """The reply with the strategy, the emotions and the prompt used."""

    reply: str
    strategy: str | None
    strategy_source: str = Field(
        description="given, planner, llm (the LLM's scored choice) or none (no strategy in the "
        "prompt)."
    )
    strategy_probs: dict[str, float] | None
    plugin: bool
    emotions: dict[str, Any]
    prompt: list[dict[str, str]]
    model: str
    usage: dict[str, int]


class UtteranceOut(BaseModel):
    """An utterance of the request with its prediction."""

    index: int = Field(description="Position in the dialogue (0-based).")
    speaker: str | None
    text: str
    id: str | None = None
    prediction: PredictionOut


class DialogueResponse(BaseModel):
    """One prediction per utterance, in dialogue order."""

    recognizer: str
    taxonomy: str
    id: str | None
    speakers: list[str] = Field(description="Distinct speakers in order of first appearance.")
    utterances: list[UtteranceOut]


class LabelOut(BaseModel):
    """A label of a taxonomy."""

    name: str
    vad: list[float] = Field(description="The label's valence, arousal, dominance in [-1, 1].")
    group: str = Field(description="The Ekman label it maps to (used to colour it).")


class TaxonomyOut(BaseModel):
    """A taxonomy the predictions can be mapped into."""

    name: str
    multi_label: bool
    neutral: str | None
    labels: list[LabelOut]


class RecognizerOut(BaseModel):
    """The served recogniser."""

    name: str
    taxonomy: str = Field(description="Taxonomy of its predictions (before any mapping).")
    labels: list[str]


class LimitsOut(BaseModel):
    """The limits in force (``emoscope serve`` options of the same names)."""

    max_batch: int
    max_utterances: int
    max_text_chars: int
    max_body_bytes: int
    concurrency: int
    max_queue: int


class ModelsResponse(BaseModel):
    """What this server serves."""

    recognizer: RecognizerOut
    default_taxonomy: str = Field(description="Taxonomy of responses when none is requested.")
    taxonomies: list[TaxonomyOut]
    limits: LimitsOut
    version: str


class HealthResponse(BaseModel):
    """Service status."""

    status: str = Field(description="'ok' once the recogniser is loaded.")
    recognizer: str | None
    version: str


class ErrorOut(BaseModel):
    """An error that is not a validation error (413, 503)."""

    detail: str
