"""emoscope: emotion understanding with language models.

Recognise emotion in texts and conversations, look inside language models, evaluate on standard
datasets, and serve the results. Heavy parts (torch, transformers) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emoscope._version import __version__
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import DataError, DatasetNotFoundError, EmoscopeError
from emoscope.evaluate import evaluate
from emoscope.labels import Taxonomy, get_taxonomy, map_distribution, map_label
from emoscope.prediction import PREDICTION_SCHEMA, EmotionPrediction
from emoscope.recognizers.base import Recognizer, available_recognizers, load_recognizer

if TYPE_CHECKING:
    from emoscope.recognizers.encoder import EncoderRecognizer

__all__ = [
    "PREDICTION_SCHEMA",
    "DataError",
    "DatasetNotFoundError",
    "Dialogue",
    "EmoscopeError",
    "EmotionPrediction",
    "Recognizer",
    "Taxonomy",
    "Utterance",
    "__version__",
    "available_recognizers",
    "evaluate",
    "get_taxonomy",
    "load",
    "load_dataset",
    "load_recognizer",
    "map_distribution",
    "map_label",
]


def load(
    path: str | None = None,
    taxonomy: str | None = None,
    backend: str = "auto",
    neutral_prior: float = 1.0,
) -> EncoderRecognizer:
    """Load emoscope's default model (or a model folder saved by ``emoscope train``).

    ``backend`` is ``auto`` (bfloat16 where the CPU has it natively, else float32), ``torch``
    (float32), ``torch-bf16``, ``torch-int8``, ``onnx`` or ``onnx-int8`` (the last two need
    ``emoscope[onnx]``).
    ``neutral_prior`` below 1 lowers the neutral label's probability for texts from domains
    with fewer neutral texts than MELD (0.35 was fitted on dev data; ``docs/model_card.md``).
    """
    from emoscope.recognizers.encoder import EncoderRecognizer

    return EncoderRecognizer(path, taxonomy=taxonomy, backend=backend, neutral_prior=neutral_prior)


def __getattr__(name: str) -> Any:
    # load_dataset is imported on first use: the readers are many modules, rarely all needed.
    if name == "load_dataset":
        from emoscope.datasets import load_dataset

        return load_dataset
    raise AttributeError(f"module 'emoscope' has no attribute {name!r}")
