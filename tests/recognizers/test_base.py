"""The recogniser base: the shared mixin, and one save/load shape for every recogniser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoscope import Dialogue, EmotionPrediction, Utterance
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.recognizers.base import Recognizer, RecognizerMixin


class _Echo(RecognizerMixin):
    """Puts all probability on ``joy`` when the text says so, else on ``neutral``."""

    name = "echo"

    def __init__(self) -> None:
        self._taxonomy = get_taxonomy("ekman")
        self.seen: list[str] = []

    def _predict_text(self, text: str) -> EmotionPrediction:
        self.seen.append(text)
        top = "joy" if "joy" in text else "neutral"
        probs = [1.0 if lab == top else 0.0 for lab in self.labels]
        return EmotionPrediction.from_scores(self.labels, probs, self._taxonomy.name)


def test_mixin_gives_taxonomy_labels_and_per_text_predict() -> None:
    rec = _Echo()
    assert isinstance(rec, Recognizer)
    assert rec.taxonomy.name == "ekman"
    assert rec.labels == get_taxonomy("ekman").labels
    dialogue = Dialogue([Utterance("hi", "A"), Utterance("such joy", "B")])
    preds = rec.predict(["joy!", dialogue, "plain"])
    assert [p.labels[0] for p in preds] == ["joy", "neutral", "joy", "neutral"]
    assert rec.seen == ["joy!", "hi", "such joy", "plain"]


def test_mixin_predict_checks_inputs_like_every_recogniser() -> None:
    rec = _Echo()
    with pytest.raises(EmoscopeError, match="input 1 is empty"):
        rec.predict(["fine", "  "])
    with pytest.raises(TypeError, match="not a single one"):
        rec.predict("a single string")  # type: ignore[arg-type]
    assert rec.seen == []


def test_mixin_without_per_text_prediction_says_what_is_missing() -> None:
    class Bare(RecognizerMixin):
        name = "bare"

        def __init__(self) -> None:
            self._taxonomy = get_taxonomy("ekman")

    with pytest.raises(NotImplementedError, match="Bare must implement _predict_text"):
        Bare().predict(["text"])


def test_every_built_in_recogniser_uses_the_mixin() -> None:
    from emoscope._views import MappedRecognizer
    from emoscope.recognizers.encoder import EncoderRecognizer
    from emoscope.recognizers.lexicon import LexiconRecognizer
    from emoscope.recognizers.llm import LLMRecognizer
    from emoscope.recognizers.peers import NRCLexRecognizer, VaderRecognizer

    for cls in (
        EncoderRecognizer,
        LexiconRecognizer,
        LLMRecognizer,
        MappedRecognizer,
        NRCLexRecognizer,
        VaderRecognizer,
    ):
        assert issubclass(cls, RecognizerMixin), cls
        # the shared properties are not written again
        assert "taxonomy" not in vars(cls) and "labels" not in vars(cls), cls


def _lexicon() -> Any:
    from emoscope.recognizers.lexicon import LexiconRecognizer

    return LexiconRecognizer()


def _encoder() -> Any:
    from emoscope.recognizers.encoder import EncoderRecognizer

    return EncoderRecognizer.load(backend="torch")


@pytest.mark.parametrize(
    ("make", "target"), [(_lexicon, "lexicon.npz"), (_encoder, "model")], ids=["lexicon", "encoder"]
)
def test_save_returns_the_path_that_load_reads(make: Any, target: str, tmp_path: Path) -> None:
    rec = make()
    written = rec.save(tmp_path / target)
    assert written == tmp_path / target and written.exists()
    options = {"backend": "torch"} if target == "model" else {}
    again = type(rec).load(written, **options)
    texts = ["thank you so much, this is wonderful", "i am scared and alone"]
    for a, b in zip(rec.predict(texts), again.predict(texts), strict=True):
        assert a.labels == b.labels
        np.testing.assert_allclose(
            [a.probs[k] for k in rec.labels], [b.probs[k] for k in rec.labels], atol=1e-6
        )
