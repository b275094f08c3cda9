"""Adapters to peer emotion tools from PyPI, for comparison with emoscope's own recognisers.

Both need the optional extra ``peers`` (``pip install 'emoscope[peers]'``); the packages are
imported when a recogniser is built, and a missing one raises
:class:`~emoscope.errors.EmoscopeError` with that install hint.

``nrclex``
    NRCLex (Bailey, 2019) with the NRC Word-Emotion Association Lexicon (Mohammad & Turney,
    2013). NRCLex's ``load_raw_text`` tokenises and lemmatises with TextBlob, which needs NLTK
    corpora that are downloaded separately; instead emoscope tokenises the text itself
    (:func:`emoscope.recognizers.lexicon.tokenize`), maps each word to the form the bundled
    lexicon lists (a small suffix-stripping fallback stands in for TextBlob's WordNet
    lemmatiser: ``tears`` → ``tear``, ``cried`` → ``cry``) and hands the words to NRCLex's
    ``load_token_list``. The counts of the eight emotions become a distribution over the
    ``plutchik`` taxonomy; positive/negative counts and the matched words go to the cues.
    NRCLex does not handle negation.

``vader``
    VADER (Hutto & Gilbert, 2014) measures sentiment only. Its compound score becomes the
    valence; arousal and dominance are unknown and reported as 0, the neutral midpoint. The
    distribution over the ``ekman`` taxonomy is :meth:`Taxonomy.mixture` of that valence alone,
    so labels of similar valence (joy and surprise; anger, disgust, fear and sadness) share
    probability and cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import RecognizerMixin, register
from emoscope.recognizers.lexicon import tokenize

__all__ = ["NRCLexRecognizer", "VaderRecognizer"]

INSTALL_HINT = "pip install 'emoscope[peers]'"

# (suffix, replacement) tried in order when a word is not in the NRC lexicon as written.
_SUFFIXES = (
    ("ies", "y"),
    ("ied", "y"),
    ("s", ""),
    ("es", ""),
    ("d", ""),
    ("ed", ""),
    ("ing", ""),
    ("ing", "e"),
)
# Older NRCLex lexicon files abbreviate anticipation.
_AFFECT_ALIASES = {"anticip": "anticipation"}


def _missing(package: str, error: ImportError) -> EmoscopeError:
    return EmoscopeError(
        f"the {package!r} recogniser needs the optional package {package} ({error}); "
        f"install it with: {INSTALL_HINT}"
    )


def _lemma(word: str, lexicon: Mapping[str, Any]) -> str | None:
    """``word`` or a de-inflected form of it that ``lexicon`` lists, else ``None``."""
    if word in lexicon:
        return word
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            stem = word[: -len(suffix)]
            for cand in (stem + repl, stem[:-1] if stem[-1:] == stem[-2:-1] else None):
                if cand and cand in lexicon:
                    return cand
    return None


@register("nrclex")
class NRCLexRecognizer(RecognizerMixin):
    """NRC EmoLex emotion counts through NRCLex, as a distribution over Plutchik's eight.

    Each prediction's probabilities are the shares of the eight emotions among the emotion
    associations of the matched words, its VAD the taxonomy's expected VAD of that
    distribution, and its cues ``{"words": {word: [affects]}, "positive": n, "negative": n}``.
    When no matched word carries one of the eight emotions the distribution is uniform, the
    confidence is therefore 1/8, and VAD is ``None``.

    Raises:
        EmoscopeError: NRCLex is not installed, or too old to accept pre-tokenised text
            (``load_token_list`` arrived in NRCLex 4).
    """

    name = "nrclex"

    def __init__(self) -> None:
        try:
            from nrclex import NRCLex
        except ImportError as e:
            raise _missing("nrclex", e) from e
        self._nrc: Any = NRCLex()
        if not hasattr(self._nrc, "load_token_list"):
            raise EmoscopeError(
                "the installed NRCLex cannot read pre-tokenised text; upgrade it with: "
                "pip install -U 'nrclex>=4.1'"
            )
        # NRCLex keeps its loaded lexicon (word -> affect names) in this attribute.
        self._lexicon: Mapping[str, Sequence[str]] = self._nrc.__lexicon__
        self._taxonomy = get_taxonomy("plutchik")

    def _predict_text(self, text: str) -> EmotionPrediction:
        words = [w for w in (_lemma(t, self._lexicon) for t in tokenize(text)) if w is not None]
        self._nrc.load_token_list(words)
        raw = {_AFFECT_ALIASES.get(k, k): int(v) for k, v in self._nrc.raw_emotion_scores.items()}
        counts = [raw.get(lab, 0) for lab in self.labels]
        total = sum(counts)
        cues: dict[str, Any] = {
            "words": {w: list(a) for w, a in self._nrc.affect_dict.items()},
            "positive": raw.get("positive", 0),
            "negative": raw.get("negative", 0),
        }
        if total == 0:
            probs = [1.0 / len(self.labels)] * len(self.labels)
            return EmotionPrediction.from_scores(self.labels, probs, self._taxonomy.name, cues=cues)
        probs = [c / total for c in counts]
        return EmotionPrediction.from_scores(
            self.labels,
            probs,
            self._taxonomy.name,
            vad=self._taxonomy.expected_vad(probs),
            cues=cues,
        )


@register("vader")
class VaderRecognizer(RecognizerMixin):
    """VADER sentiment as valence, spread over the Ekman labels by valence alone.

    Each prediction has ``vad = (compound, 0.0, 0.0)``; arousal and dominance are not measured
    by VADER and sit at the neutral midpoint. The probabilities are
    ``ekman.mixture(vad, sigma, dims=(0,))`` and the cues hold VADER's ``neg``, ``neu``,
    ``pos`` and ``compound`` scores.

    Args:
        sigma: width of each label's Gaussian on the valence axis; smaller values give
            sharper distributions.

    Raises:
        EmoscopeError: vaderSentiment is not installed.
    """

    name = "vader"

    def __init__(self, sigma: float = 0.3) -> None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise _missing("vaderSentiment", e) from e
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self._analyzer = SentimentIntensityAnalyzer()
        self._scores: Callable[[str], Mapping[str, float]] = self._analyzer.polarity_scores
        self.sigma = sigma
        self._taxonomy = get_taxonomy("ekman")

    def _predict_text(self, text: str) -> EmotionPrediction:
        scores = {k: float(v) for k, v in self._scores(text).items()}
        valence = max(-1.0, min(1.0, scores["compound"]))
        vad = (valence, 0.0, 0.0)
        probs = self._taxonomy.mixture(vad, sigma=self.sigma, dims=(0,))
        return EmotionPrediction(probs=probs, taxonomy=self._taxonomy.name, vad=vad, cues=scores)
