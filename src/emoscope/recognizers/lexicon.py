"""A word-association lexicon recogniser whose lexicon emoscope learns from labelled data.

No third-party lexicon is involved. :meth:`LexiconRecognizer.fit` reads a corpus labelled with
GoEmotions labels and, for every word seen in at least ``min_count`` texts, learns how much more
likely a text with a label is to contain it than a text without::

    assoc[w, l] = max(0, log P(w | l) - log P(w | not l))

where the probabilities of word presence are smoothed with a Dirichlet prior centred on the
word's overall rate (the "informative prior" of Monroe, Colaresi & Quinn, 2008, "Fightin'
Words"), so that a rare label needs many co-occurrences before a word counts as evidence for it.
Negative evidence is dropped (as in positive PMI), which raised GoEmotions dev macro-F1.
Given a corpus with VAD ratings it also learns a mean (valence, arousal, dominance) per word.

A text is scored per label as ``prior_weight * log P(l) + sum of assoc[w, l]`` over its distinct
known words, and a softmax with a temperature turns the scores into a distribution over the 28
GoEmotions labels. Its VAD is the mean VAD of its words that have one, stretched by a
per-dimension line fitted by cross-validation on the rated corpus (averaging squeezes every
text towards the corpus mean), or, when no word has a VAD, the expected VAD of the predicted
distribution (:meth:`emoscope.labels.Taxonomy.expected_vad`, on the label coordinates' scale).

Texts are tokenised by :func:`tokenize`; by default words after a negator are marked
(``not_happy``) and learned as words of their own, which raised GoEmotions dev macro-F1 by
about 0.015.

The shipped lexicon (``data/lexicon_v1.npz``) is built by ``benchmarks/build_lexicon.py`` from
the GoEmotions and EmoBank train splits; :class:`LexiconRecognizer` loads it by default.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np

from emoscope._io import atomic_open
from emoscope.errors import EmoscopeError
from emoscope.labels import Taxonomy, get_taxonomy
from emoscope.prediction import EmotionPrediction
from emoscope.recognizers.base import RecognizerMixin, register

__all__ = ["DEFAULT_LEXICON", "LexiconRecognizer", "tokenize"]

DEFAULT_LEXICON = "lexicon_v1.npz"
FORMAT = "emoscope-lexicon"
FORMAT_VERSION = 1

# Words, numbers and contractions (``don't``), single ! and ?, emoji; [.,;:] only end a
# negation scope and are not emitted.
_TOKEN_RE = re.compile(
    r"[^\W_]+(?:'[^\W_]+)*|[!?]|[.,;:]|[\U0001F300-\U0001FAFF\u2600-\u27BF]",
)
_NEGATORS = frozenset(
    [
        "not", "no", "never", "nor", "cannot", "without", "nothing", "nobody", "none",
        "neither", "dont", "cant", "wont", "isnt", "arent", "wasnt", "werent", "didnt",
        "doesnt", "couldnt", "shouldnt", "wouldnt", "havent", "hasnt", "hadnt", "aint",
    ]
)  # fmt: skip
_NEGATION_SCOPE = 3
# A word is reported as a cue when a text with its top label is exp(0.5) ~ 1.6 times as likely
# to contain it as a text without.
CUE_THRESHOLD = 0.5
NEGATION_PREFIX = "not_"


def tokenize(text: str, negation: bool = False) -> list[str]:
    """Split ``text`` into lowercase tokens.

    Tokens are words (apostrophes kept inside them: ``don't``), ``!``, ``?`` and emoji. With
    ``negation``, up to three words after a negator (``not``, ``never``, ``...n't``) and before
    the next punctuation mark get the prefix ``not_``.
    """
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    tokens: list[str] = []
    scope = 0
    for tok in _TOKEN_RE.findall(text):
        if tok in ".,;:":
            scope = 0
            continue
        if tok in "!?":
            scope = 0
            tokens.append(tok)
            continue
        if negation and scope > 0:
            tokens.append(NEGATION_PREFIX + tok)
            scope -= 1
        else:
            tokens.append(tok)
        if negation and (tok in _NEGATORS or tok.endswith("n't")):
            scope = _NEGATION_SCOPE
    return tokens


def _emoscope_version() -> str:
    try:
        return metadata.version("emoscope")
    except metadata.PackageNotFoundError:
        return "unknown"


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    out: np.ndarray = e / e.sum()
    return out


def _label_sets(labels: Sequence[str | Sequence[str]], tax: Taxonomy) -> list[set[int]]:
    out: list[set[int]] = []
    for i, labs in enumerate(labels):
        items = [labs] if isinstance(labs, str) else list(labs)
        try:
            out.append({tax.index(lab) for lab in items})
        except ValueError as e:
            raise EmoscopeError(f"training text {i}: {e}") from None
    return out


@register("lexicon")
class LexiconRecognizer(RecognizerMixin):
    """Emotion recogniser scoring texts with a learned word–label association lexicon.

    Predictions are distributions over the ``goemotions`` taxonomy (``multi_label=False``;
    ``labels`` is the top label), with VAD, ``confidence`` = top probability, and cues
    ``{"words": {word: its top label}, "known_words": n}``, listing the matched words whose
    strongest association is at least ``cue_threshold`` (a log-odds ratio) and counting all
    matched words. Dialogue context is not used: each utterance is scored on its own. A text
    without any known word gets a nearly uniform distribution leaning to the label prior.

    Args:
        path: a lexicon file written by :meth:`save`; ``None`` loads the one shipped with
            emoscope.
        temperature: overrides the softmax temperature stored in the file.
        cue_threshold: minimum association for a matched word to be reported in the cues.

    Attributes:
        header: the file's metadata: training data, knobs, emoscope version, VAD calibration.
        temperature: the softmax temperature in use.
    """

    name = "lexicon"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        temperature: float | None = None,
        cue_threshold: float = CUE_THRESHOLD,
    ) -> None:
        if path is None:
            resource = resources.files("emoscope").joinpath("data", DEFAULT_LEXICON)
            if not resource.is_file():
                raise EmoscopeError(
                    f"the shipped lexicon data/{DEFAULT_LEXICON} is missing from the emoscope "
                    "package; build it with 'python benchmarks/build_lexicon.py'"
                )
            arrays = _read_npz(resource.read_bytes(), f"emoscope/data/{DEFAULT_LEXICON}")
        else:
            p = Path(path)
            if not p.is_file():
                raise EmoscopeError(f"lexicon file {str(p)!r} does not exist")
            arrays = _read_npz(p.read_bytes(), str(p))
        self._set_state(*arrays)
        if temperature is not None:
            self._set_temperature(temperature)
        self.cue_threshold = cue_threshold

    def _set_state(
        self,
        header: dict[str, Any],
        vocab: list[str],
        assoc: np.ndarray,
        bias: np.ndarray,
        vad: np.ndarray,
    ) -> None:
        self.header = header
        self._taxonomy = get_taxonomy(header.get("taxonomy", "goemotions"))
        if list(header.get("labels", [])) != list(self._taxonomy.labels):
            raise EmoscopeError("lexicon labels do not match the goemotions taxonomy")
        self._vocab = vocab
        self._index = {w: i for i, w in enumerate(vocab)}
        # Files store float16 tables; rounding a freshly fitted lexicon the same way makes it
        # predict exactly what its saved copy will.
        self._assoc = assoc.astype(np.float16).astype(np.float64)
        self._bias = bias.astype(np.float32).astype(np.float64)
        self._vad = vad.astype(np.float16).astype(np.float64)
        self._has_vad: np.ndarray = np.logical_not(np.isnan(self._vad).any(axis=1))
        self._negation = bool(header.get("negation", False))
        cal = np.asarray(header.get("vad_calibration", [[0.0, 1.0]] * 3), dtype=np.float64)
        if cal.shape != (3, 2):
            raise EmoscopeError(f"lexicon vad_calibration has shape {cal.shape}, expected (3, 2)")
        self._vad_intercept, self._vad_slope = cal[:, 0], cal[:, 1]
        self._set_temperature(float(header.get("temperature", 1.0)))

    def _set_temperature(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    @property
    def vocabulary(self) -> list[str]:
        """Words with a label association (from the labelled corpus)."""
        return self._vocab[: self._assoc.shape[0]]

    def __repr__(self) -> str:
        n_vad = int(self._has_vad.sum())
        return (
            f"LexiconRecognizer({self._assoc.shape[0]} words, {n_vad} with VAD, "
            f"temperature={self.temperature:g})"
        )

    # -- training -----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[str | Sequence[str]],
        vad_texts: Sequence[str] | None = None,
        vad_values: Sequence[Sequence[float]] | np.ndarray | None = None,
        *,
        min_count: int = 5,
        smoothing: float = 0.25,
        prior_weight: float = 0.01,
        temperature: float = 0.4,
        negation: bool = True,
        vad_min_count: int = 1,
        vad_shrinkage: float = 5.0,
        calibrate_vad: bool = True,
        training_data: Mapping[str, Any] | None = None,
    ) -> LexiconRecognizer:
        """Learn a lexicon from texts with GoEmotions labels and, optionally, texts with VAD.

        Args:
            texts: training texts.
            labels: for each text, its GoEmotions label or labels (texts without any are
                skipped).
            vad_texts: texts rated for valence, arousal and dominance.
            vad_values: their ``(valence, arousal, dominance)`` on the ``[-1, 1]`` scale.
            min_count: a word needs to occur in at least this many labelled texts to be kept.
            smoothing: strength of the prior pulling each label's word-presence rate towards
                the word's overall rate, as a fraction of the number of labelled texts (0.25
                adds a quarter of the corpus size in pseudo-texts).
            prior_weight: weight of the log label prior in each label's score (lower values
                favour rare labels; a small positive value keeps texts without known words at
                the most frequent label rather than a uniform tie).
            temperature: softmax temperature of the predicted distribution.
            negation: mark words in the scope of a negator (``not_happy``) as separate words.
            vad_min_count: minimum number of rated texts a word needs for a VAD entry.
            vad_shrinkage: pulls each word's mean VAD towards the corpus mean, as if that many
                texts at the corpus mean had been added.
            calibrate_vad: rescale a text's mean word VAD with a per-dimension line fitted by
                cross-validation on the rated texts (see :func:`_vad_calibration`).
            training_data: a description of the corpora, stored in the file header.
        """
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} label sets")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive, got {smoothing}")
        tax = get_taxonomy("goemotions")
        label_sets = _label_sets(labels, tax)
        docs = [set(tokenize(t, negation)) for t, ls in zip(texts, label_sets, strict=True) if ls]
        label_sets = [ls for ls in label_sets if ls]
        n_docs = len(docs)
        if n_docs == 0:
            raise ValueError("no labelled texts to learn from")

        df = Counter(w for d in docs for w in d)
        vocab = sorted(w for w, c in df.items() if c >= min_count)
        index = {w: i for i, w in enumerate(vocab)}
        n_labels = len(tax)
        y = np.zeros((n_docs, n_labels))
        for i, ls in enumerate(label_sets):
            y[i, list(ls)] = 1.0
        doc_ids, tok_ids = [], []
        for i, d in enumerate(docs):
            for w in d:
                j = index.get(w)
                if j is not None:
                    doc_ids.append(i)
                    tok_ids.append(j)
        doc_arr, tok_arr = np.asarray(doc_ids, dtype=np.int64), np.asarray(tok_ids, dtype=np.int64)
        counts = np.stack(
            [
                np.bincount(tok_arr, weights=y[doc_arr, k], minlength=len(vocab))
                for k in range(n_labels)
            ],
            axis=1,
        )
        df_vec = np.array([df[w] for w in vocab], dtype=float)[:, None]
        n_pos = y.sum(axis=0)
        n_neg = n_docs - n_pos
        strength = smoothing * n_docs
        background = strength * df_vec / n_docs
        log_pos = np.log(counts + background) - np.log(n_pos + strength)
        log_neg = np.log(df_vec - counts + background) - np.log(n_neg + strength)
        assoc = np.maximum(log_pos - log_neg, 0.0)
        # A label never seen in training counts as half a text, so its log prior stays finite.
        prior = np.maximum(n_pos, 0.5) / n_docs
        bias = prior_weight * np.log(prior)

        words = list(vocab)
        vad = np.full((len(vocab), 3), np.nan)
        calibration = [[0.0, 1.0] for _ in range(3)]
        n_vad_texts = 0
        if vad_texts is not None or vad_values is not None:
            if vad_texts is None or vad_values is None:
                raise ValueError("vad_texts and vad_values go together")
            words, vad, calibration = _fit_vad(
                vocab,
                vad_texts,
                vad_values,
                negation=negation,
                min_count=vad_min_count,
                shrinkage=vad_shrinkage,
                calibrate=calibrate_vad,
            )
            n_vad_texts = len(vad_texts)

        header: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "emoscope_version": _emoscope_version(),
            "taxonomy": tax.name,
            "labels": list(tax.labels),
            "association": "positive log-odds ratio of word presence, label vs rest, "
            "with an informative Dirichlet prior",
            "training_data": dict(training_data or {}),
            "n_label_texts": n_docs,
            "n_vad_texts": n_vad_texts,
            "min_count": min_count,
            "vad_min_count": vad_min_count,
            "smoothing": smoothing,
            "prior_weight": prior_weight,
            "temperature": temperature,
            "negation": negation,
            "vad_shrinkage": vad_shrinkage,
            "vad_calibration": calibration,
        }
        rec = cls.__new__(cls)
        rec._set_state(header, words, assoc, bias, vad)
        rec.cue_threshold = CUE_THRESHOLD
        return rec

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the lexicon as a compressed ``.npz`` (float16 tables plus a JSON header) and
        return its path."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            header=np.frombuffer(json.dumps(self.header).encode("utf-8"), dtype=np.uint8),
            vocab=np.frombuffer("\n".join(self._vocab).encode("utf-8"), dtype=np.uint8),
            assoc=self._assoc.astype(np.float16),
            bias=self._bias.astype(np.float32),
            vad=self._vad.astype(np.float16),
        )
        with atomic_open(path, "wb") as fh:
            fh.write(buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> LexiconRecognizer:
        """Read a lexicon written by :meth:`save` (keyword arguments as for the constructor)."""
        return cls(path, **kwargs)

    # -- prediction ---------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        seen: dict[int, None] = {}
        for tok in tokenize(text, self._negation):
            i = self._index.get(tok)
            if i is not None:
                seen.setdefault(i, None)
        return list(seen)

    def scores(self, text: str) -> np.ndarray:
        """The unnormalised score of each label for ``text`` (before the temperature)."""
        ids = [i for i in self._ids(text) if i < self._assoc.shape[0]]
        out: np.ndarray = self._bias + self._assoc[ids].sum(axis=0)
        return out

    def association(self, word: str) -> dict[str, float]:
        """The learned association of ``word`` with each label (empty if unknown)."""
        i = self._index.get(word.lower())
        if i is None or i >= self._assoc.shape[0]:
            return {}
        return dict(zip(self.labels, (float(x) for x in self._assoc[i]), strict=True))

    def word_vad(self, word: str) -> tuple[float, float, float] | None:
        """The mean rated VAD of the texts containing ``word`` (``None`` if it has none)."""
        i = self._index.get(word.lower())
        if i is None or not self._has_vad[i]:
            return None
        v, a, d = (float(x) for x in self._vad[i])
        return (v, a, d)

    def _predict_text(self, text: str) -> EmotionPrediction:
        ids = self._ids(text)
        n_assoc = self._assoc.shape[0]
        label_ids = [i for i in ids if i < n_assoc]
        rows = self._assoc[label_ids]
        probs = _softmax((self._bias + rows.sum(axis=0)) / self.temperature).tolist()
        vad_ids = [i for i in ids if self._has_vad[i]]
        if vad_ids:
            raw = self._vad_intercept + self._vad_slope * self._vad[vad_ids].mean(axis=0)
            v, a, d = (float(x) for x in np.clip(raw, -1.0, 1.0))
            vad = (v, a, d)
        else:
            vad = self._taxonomy.expected_vad(probs)
        words = {
            self._vocab[i]: self.labels[int(row.argmax())]
            for i, row in zip(label_ids, rows, strict=True)
            if row.max() >= self.cue_threshold
        }
        return EmotionPrediction.from_scores(
            self.labels,
            probs,
            self._taxonomy.name,
            vad=vad,
            cues={"words": words, "known_words": len(label_ids)},
            multi_label=False,
        )


def _word_vad_means(
    token_sets: Sequence[set[str]], vals: np.ndarray, min_count: int, shrinkage: float
) -> dict[str, np.ndarray]:
    """Shrunken mean VAD of the rated texts containing each word seen in ``min_count`` of them."""
    sums: dict[str, np.ndarray] = {}
    counts: Counter[str] = Counter()
    for tokens, row in zip(token_sets, vals, strict=True):
        for w in tokens:
            counts[w] += 1
            if w in sums:
                sums[w] += row
            else:
                sums[w] = row.copy()
    mean = vals.mean(axis=0) if len(vals) else np.zeros(3)
    return {
        w: (sums[w] + shrinkage * mean) / (c + shrinkage)
        for w, c in counts.items()
        if c >= min_count
    }


def _vad_calibration(
    token_sets: Sequence[set[str]],
    vals: np.ndarray,
    min_count: int,
    shrinkage: float,
    folds: int = 5,
) -> list[list[float]]:
    """Per-dimension ``[intercept, slope]`` mapping a text's mean word VAD to its rated VAD.

    Averaging word means pulls every text towards the corpus mean, so the raw means have a much
    smaller spread than the ratings. The mapping is a least-squares line fitted on out-of-fold
    predictions (each fold's texts scored by word means learned from the other folds), so it
    does not learn the optimism of scoring a text with its own ratings.
    """
    n = len(token_sets)
    oof = np.full((n, 3), np.nan)
    for k in range(folds):
        rest = [i for i in range(n) if i % folds != k]
        table = _word_vad_means([token_sets[i] for i in rest], vals[rest], min_count, shrinkage)
        for i in range(k, n, folds):
            known = [table[w] for w in sorted(token_sets[i]) if w in table]
            if known:
                oof[i] = np.mean(known, axis=0)
    ok = ~np.isnan(oof[:, 0])
    coef = [[0.0, 1.0] for _ in range(3)]
    if ok.sum() < 10:
        return coef
    for d in range(3):
        x, y = oof[ok, d], vals[ok, d]
        var = float(x.var())
        if var > 0:
            slope = max(float(np.mean((x - x.mean()) * (y - y.mean()))) / var, 0.0)
            coef[d] = [float(y.mean() - slope * x.mean()), slope]
    return coef


def _fit_vad(
    vocab: list[str],
    texts: Sequence[str],
    values: Sequence[Sequence[float]] | np.ndarray,
    *,
    negation: bool,
    min_count: int,
    shrinkage: float,
    calibrate: bool,
) -> tuple[list[str], np.ndarray, list[list[float]]]:
    """Word VAD table (new words go after ``vocab``) and the calibration of text means."""
    if len(texts) != len(values):
        raise ValueError(f"{len(texts)} VAD texts but {len(values)} VAD values")
    vals = np.asarray(values, dtype=float).reshape(len(texts), -1)
    if vals.shape[1] != 3:
        raise ValueError(f"VAD values need 3 columns, got {vals.shape[1]}")
    if len(vals) and (np.isnan(vals).any() or np.abs(vals).max() > 1.0):
        raise ValueError("VAD values must be finite and on the [-1, 1] scale")
    token_sets = [set(tokenize(t, negation)) for t in texts]
    table = _word_vad_means(token_sets, vals, min_count, shrinkage)
    known = set(vocab)
    words = list(vocab) + sorted(w for w in table if w not in known)
    vad = np.full((len(words), 3), np.nan)
    for i, w in enumerate(words):
        if w in table:
            vad[i] = table[w]
    if calibrate:
        calibration = _vad_calibration(token_sets, vals, min_count, shrinkage)
    else:
        calibration = [[0.0, 1.0] for _ in range(3)]
    return words, vad, calibration


def _read_npz(
    data: bytes, where: str
) -> tuple[dict[str, Any], list[str], np.ndarray, np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode("utf-8"))
            vocab_text = bytes(z["vocab"]).decode("utf-8")
            assoc, bias, vad = z["assoc"], z["bias"], z["vad"]
    except (OSError, KeyError, ValueError) as e:
        raise EmoscopeError(f"{where}: not an emoscope lexicon file ({e})") from None
    if header.get("format") != FORMAT:
        raise EmoscopeError(f"{where}: not an emoscope lexicon file")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise EmoscopeError(
            f"{where}: lexicon format version {header['format_version']} is newer than this "
            f"emoscope understands ({FORMAT_VERSION}); upgrade emoscope"
        )
    vocab = vocab_text.split("\n") if vocab_text else []
    n_labels = len(header.get("labels", []))
    if (
        assoc.ndim != 2
        or assoc.shape[1] != n_labels
        or bias.shape != (n_labels,)
        or vad.shape != (len(vocab), 3)
        or assoc.shape[0] > len(vocab)
    ):
        raise EmoscopeError(f"{where}: lexicon tables have inconsistent shapes")
    return header, vocab, assoc, bias, vad
