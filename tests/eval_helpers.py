"""Small rule-based recognisers and toy datasets for the evaluation, report and CLI tests.

They are real :class:`~emoscope.recognizers.Recognizer` implementations (keyword rules), so the
harness is exercised end to end; the CLI tests load them by dotted path,
e.g. ``--recognizer eval_helpers:KeywordRecognizer``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from emoscope.datasets.base import Dataset, Example
from emoscope.dialogue import Dialogue, Utterance
from emoscope.labels import Taxonomy, get_taxonomy
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import flatten_inputs

# GoEmotions labels triggered by a keyword.
KEYWORDS = {
    "furious": "anger",
    "annoyed": "annoyance",
    "thanks": "gratitude",
    "love": "love",
    "wow": "surprise",
    "scared": "fear",
    "sad": "sadness",
    "gross": "disgust",
}


class KeywordRecognizer:
    """Single-label GoEmotions recogniser: 0.7 on the first keyword's label, the rest spread.

    Texts without a keyword are neutral. VAD is the predicted label's VAD.
    """

    name = "keyword"
    taxonomy_name = "goemotions"
    multi_label = False

    def __init__(self) -> None:
        self.batches: list[int] = []

    @property
    def taxonomy(self) -> Taxonomy:
        return get_taxonomy(self.taxonomy_name)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.taxonomy.labels

    def _found(self, text: str) -> list[str]:
        words = re.findall(r"[a-z']+", text.lower())
        found = [KEYWORDS[w] for w in words if w in KEYWORDS]
        return list(dict.fromkeys(found)) or ["neutral"]

    def _one(self, text: str) -> EmotionPrediction:
        found = self._found(text)
        tax = self.taxonomy
        rest = 0.3 / (len(tax) - 1)
        probs = {lab: (0.7 if lab == found[0] else rest) for lab in tax.labels}
        return EmotionPrediction(probs=probs, taxonomy=tax.name, vad=tax.vad_of(found[0]))

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        targets = flatten_inputs(inputs)
        self.batches.append(len(targets))
        return [self._one(t.text) for t in targets]


class MultiKeywordRecognizer(KeywordRecognizer):
    """Multi-label GoEmotions recogniser: every keyword's label at 0.9, others at 0.05."""

    name = "multi-keyword"
    multi_label = True

    def _one(self, text: str) -> EmotionPrediction:
        found = self._found(text)
        probs = {lab: (0.9 if lab in found else 0.05) for lab in self.labels}
        return EmotionPrediction(
            probs=probs, taxonomy=self.taxonomy_name, labels=tuple(found), multi_label=True
        )


class MeldKeywordRecognizer(KeywordRecognizer):
    """The keyword rules over MELD labels (no mapping needed on MELD)."""

    name = "meld-keyword"
    taxonomy_name = "meld"
    _TO_MELD: ClassVar[dict[str, str]] = {"annoyance": "anger", "gratitude": "joy", "love": "joy"}

    def _found(self, text: str) -> list[str]:
        return [self._TO_MELD.get(lab, lab) for lab in super()._found(text)]


class FlakyParserRecognizer(KeywordRecognizer):
    """Marks texts containing '???' as parse failures, as an LLM recogniser would."""

    name = "flaky"

    def _one(self, text: str) -> EmotionPrediction:
        pred = super()._one(text)
        if "???" not in text:
            return pred
        return EmotionPrediction(
            probs=pred.probs, taxonomy=pred.taxonomy, cues={"parse_failed": True}
        )


class DroppingRecognizer(KeywordRecognizer):
    """Broken on purpose: loses the last prediction of every batch."""

    name = "dropping"

    def predict(self, inputs: Sequence[str | Dialogue]) -> list[EmotionPrediction]:
        return super().predict(inputs)[:-1]


# Toy datasets ------------------------------------------------------------------------------

MELD_DIALOGUES = [
    ("0", [("Ross", "I am furious!", "anger"), ("Rachel", "Wow, really?", "surprise"),
           ("Ross", "Thanks a lot.", "joy")]),
    ("1", [("Joey", "I'm so sad.", "sadness"), ("Monica", "That is gross", "disgust"),
           ("Joey", "ok", "neutral"), ("Chandler", "I am annoyed", "fear")]),
]  # fmt: skip


def conversational(taxonomy: str = "meld", name: str = "toy-meld") -> Dataset:
    dialogues, examples = [], []
    for did, turns in MELD_DIALOGUES:
        d = Dialogue([Utterance(text, speaker) for speaker, text, _ in turns], id=did)
        dialogues.append(d)
        examples += [
            Example(text, labels=(label,), dialogue=d, index=i)
            for i, (_, text, label) in enumerate(turns)
        ]
    return Dataset(name, "test", examples, taxonomy=get_taxonomy(taxonomy), dialogues=dialogues)


def texts_dataset(rows: list[tuple[str, tuple[str, ...]]], taxonomy: str | None) -> Dataset:
    tax = None if taxonomy is None else get_taxonomy(taxonomy)
    return Dataset("toy", "test", [Example(t, labels=labs) for t, labs in rows], taxonomy=tax)


GOEMOTIONS_ROWS = [
    ("furious and annoyed", ("anger", "annoyance")),
    ("thanks I love it", ("gratitude", "love")),
    ("wow", ("surprise", "excitement")),
    ("hello", ("neutral",)),
]
