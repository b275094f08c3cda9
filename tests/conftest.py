"""Fixtures shared by the tests: tiny BERT and Llama models and a miniature data root."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import pytest

from inside_helpers import WORDS, build_tiny_bert, build_tiny_llama

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Words of the texts below that the shared vocabulary (inside_helpers.WORDS) lacks.
_EXTRA_WORDS = ["thanks", "thank", "amazing", "awful", "stupid", "annoying"]

_LEX = {
    "joy": ["happy", "glad", "great", "love", "wonderful", "amazing", "fun"],
    "sadness": ["sad", "sorry", "miss", "cry", "terrible", "lost", "alone"],
    "anger": ["angry", "hate", "mad", "stupid", "annoying", "furious"],
    "fear": ["scared", "afraid", "fear", "worried", "nervous"],
    "surprise": ["wow", "what", "really", "surprise", "oh"],
    "disgust": ["gross", "disgusting", "eww"],
    "neutral": ["okay", "today", "here", "there", "the", "it"],
}
_FILLER = ["i", "am", "so", "the", "it", "was", "that", "this", "we", "they"]
_VAD = {
    "joy": (4.2, 3.6, 3.4),
    "sadness": (1.8, 2.6, 2.2),
    "anger": (1.9, 4.0, 3.6),
    "fear": (1.9, 4.1, 1.9),
    "surprise": (3.4, 4.2, 2.9),
    "disgust": (1.9, 3.3, 3.0),
    "neutral": (3.0, 2.8, 3.0),
}


def _sentence(rng: random.Random, label: str) -> str:
    words = rng.sample(_LEX[label], k=min(2, len(_LEX[label]))) + rng.sample(_FILLER, k=3)
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 4-layer BERT with a WordPiece vocabulary, saved like a Hub model."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    return build_tiny_bert(
        folder, layers=4, hidden=32, max_positions=64, words=[*WORDS, *_EXTRA_WORDS]
    )


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with a word-level tokenizer (inside_helpers), one per test module."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def llama(llama_dir: Path) -> Any:
    """:data:`llama_dir` loaded with :func:`emoscope.activations.load_model`."""
    from emoscope.activations import load_model

    return load_model(str(llama_dir))


@pytest.fixture(scope="session")
def mini_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small MELD / EmoryNLP / GoEmotions / EmoBank files in the real datasets' formats."""
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    meld_labels = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    (root / "meld").mkdir()
    for split, n_dialogues in [("train", 12), ("dev", 4), ("test", 4)]:
        with open(root / "meld" / f"{split}_sent_emo.csv", "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "Sr No.",
                    "Utterance",
                    "Speaker",
                    "Emotion",
                    "Sentiment",
                    "Dialogue_ID",
                    "Utterance_ID",
                    "Season",
                    "Episode",
                    "StartTime",
                    "EndTime",
                ]
            )
            sr = 1
            for d in range(n_dialogues):
                for u in range(rng.randint(3, 6)):
                    lab = rng.choice(meld_labels)
                    w.writerow(
                        [
                            sr,
                            _sentence(rng, lab),
                            rng.choice(["Ross", "Rachel", "Joey"]),
                            lab,
                            "neutral",
                            d,
                            u,
                            1,
                            1,
                            "00:00:01,000",
                            "00:00:02,000",
                        ]
                    )
                    sr += 1
    emory = {
        "Neutral": "neutral",
        "Joyful": "joy",
        "Peaceful": "neutral",
        "Powerful": "joy",
        "Scared": "fear",
        "Mad": "anger",
        "Sad": "sadness",
    }
    (root / "emorynlp").mkdir()
    for split, n_scenes in [("train", 8), ("dev", 3), ("test", 3)]:
        path = root / "emorynlp" / f"emorynlp_{split}_final.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "Utterance",
                    "Speaker",
                    "Emotion",
                    "Scene_ID",
                    "Utterance_ID",
                    "Season",
                    "Episode",
                    "Start_Time",
                    "End_Time",
                ]
            )
            for s in range(n_scenes):
                for u in range(1, rng.randint(3, 6) + 1):
                    lab = rng.choice(list(emory))
                    speaker = str([rng.choice(["Monica Geller", "Chandler Bing"])])
                    w.writerow(
                        [
                            _sentence(rng, emory[lab]),
                            speaker,
                            lab,
                            s + 1,
                            u,
                            1,
                            1,
                            "00:00:01.000",
                            "00:00:02.000",
                        ]
                    )
    go_labels = [
        "admiration",
        "amusement",
        "anger",
        "annoyance",
        "approval",
        "caring",
        "confusion",
        "curiosity",
        "desire",
        "disappointment",
        "disapproval",
        "disgust",
        "embarrassment",
        "excitement",
        "fear",
        "gratitude",
        "grief",
        "joy",
        "love",
        "nervousness",
        "optimism",
        "pride",
        "realization",
        "relief",
        "remorse",
        "sadness",
        "surprise",
        "neutral",
    ]
    (root / "goemotions").mkdir()
    (root / "goemotions" / "labels.txt").write_text("\n".join(go_labels) + "\n", encoding="utf-8")
    for split, n in [("train", 80), ("dev", 30), ("test", 30)]:
        rows = []
        for i in range(n):
            lab = rng.choice(list(_LEX))
            ids = [go_labels.index(lab if lab in go_labels else "neutral")]
            if rng.random() < 0.2:
                ids.append(go_labels.index("neutral"))
            ids = sorted(set(ids))
            rows.append(f"{_sentence(rng, lab)}\t{','.join(map(str, ids))}\tc{split}{i}")
        (root / "goemotions" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "emobank").mkdir()
    with open(root / "emobank" / "emobank.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", "V", "A", "D", "text"])
        for split, n in [("train", 60), ("dev", 20), ("test", 20)]:
            for i in range(n):
                lab = rng.choice(list(_VAD))
                v, a, d = (round(x + rng.uniform(-0.3, 0.3), 2) for x in _VAD[lab])
                w.writerow([f"eb_{split}_{i}", split, v, a, d, _sentence(rng, lab)])
    (root / "README.json").write_text(json.dumps({"note": "generated by tests/conftest.py"}))
    return root
