"""Options, work units and results of an annotation run (shared by driver and workers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emoscope.errors import EmoscopeError

__all__ = [
    "FORMATS",
    "MANIFEST_VERSION",
    "PRED_COLUMNS",
    "AnnotateOptions",
    "AnnotateResult",
    "ChunkResult",
    "ChunkSpec",
    "Job",
    "pred_columns",
]


FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_EXT = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}
PRED_COLUMNS = (
    "pred_label",
    "pred_labels",
    "pred_confidence",
    "pred_probs",
    "pred_valence",
    "pred_arousal",
    "pred_dominance",
    "pred_language",
    "pred_warnings",
)
MANIFEST_VERSION = 1
# A dialogue longer than this many chunks' worth of rows is almost surely a wrong --dialogue-col.
_MAX_DIALOGUE_CHUNKS = 50
_PREVIEW = 120


@dataclass(frozen=True)
class AnnotateOptions:
    """Everything that decides the content of the output (a resumed run must match it).

    Args:
        text_col: column holding the text.
        dialogue_col: column holding a dialogue id; consecutive rows with the same id are
            one dialogue. ``None``: every row is a text of its own.
        speaker_col: column holding the speaker (dialogue mode).
        turn_col: column ordering the turns of a dialogue (numbers; dialogue mode).
        recognizer: recogniser name or dotted path (``None``: the default model if installed,
            else the lexicon; resolved before the run starts).
        taxonomy: map predictions into this taxonomy.
        chunk_size: rows per chunk (a chunk holds whole dialogues, so it may be larger).
        max_chars: texts longer than this are bad rows.
        probs: ``"json"`` (one ``pred_probs`` column) or ``"columns"`` (``prob_<label>``).
    """

    text_col: str = "text"
    dialogue_col: str | None = None
    speaker_col: str | None = None
    turn_col: str | None = None
    recognizer: str | None = None
    taxonomy: str | None = None
    chunk_size: int = 1000
    max_chars: int = 5000
    probs: str = "json"

    def check(self) -> None:
        """Raise :class:`EmoscopeError` for inconsistent options."""
        if self.chunk_size < 1:
            raise EmoscopeError(f"chunk size must be at least 1, got {self.chunk_size}")
        if self.max_chars < 1:
            raise EmoscopeError(f"max chars must be at least 1, got {self.max_chars}")
        if self.probs not in ("json", "columns"):
            raise EmoscopeError(f"probs must be 'json' or 'columns', got {self.probs!r}")
        if self.dialogue_col is None and (self.speaker_col or self.turn_col):
            raise EmoscopeError("--speaker-col and --turn-col need --dialogue-col")
        named = [c for c in (self.text_col, self.dialogue_col, self.speaker_col, self.turn_col)]
        cols = [c for c in named if c is not None]
        if len(set(cols)) != len(cols):
            raise EmoscopeError(f"the text, dialogue, speaker and turn columns must differ: {cols}")


@dataclass(frozen=True)
class ChunkSpec:
    """Where one chunk lies in the input.

    ``start``/``end`` are byte offsets (CSV, JSONL) or row offsets (Parquet); ``first_row`` is
    the 0-based number of its first record and ``first_line`` the 1-based line it starts on.
    """

    index: int
    start: int
    end: int
    first_row: int
    n_rows: int
    first_line: int = 0


@dataclass(frozen=True)
class Job:
    """What a worker needs: the input's layout, the output format, options and labels."""

    input: str
    in_format: str
    out_format: str
    columns: tuple[str, ...]
    options: AnnotateOptions
    labels: tuple[str, ...]
    taxonomy: str
    threads: int = 0


@dataclass
class ChunkResult:
    """An annotated chunk: output bytes, its bad rows and counts."""

    index: int
    n_rows: int
    data: bytes
    bad: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AnnotateResult:
    """Summary of a finished run."""

    output: Path
    bad_rows_file: Path
    rows: int
    written: int
    bad: int
    chunks: int
    resumed_chunks: int
    seconds: float
    processed_rows: int
    engine: str
    workers: int
    recognizer: str

    @property
    def rows_per_second(self) -> float:
        """Rows annotated per second in this run (chunks done by an earlier run excluded)."""
        return self.processed_rows / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["output"], d["bad_rows_file"] = str(self.output), str(self.bad_rows_file)
        d["rows_per_second"] = self.rows_per_second
        return d


def _format_of(path: Path, what: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise EmoscopeError(
            f"{path}: unsupported {what} file type {path.suffix or '(none)'!r}; expected "
            ".csv, .tsv, .jsonl (.ndjson) or .parquet"
        )
    return fmt


def pred_columns(probs: str, labels: Sequence[str]) -> list[str]:
    """The names of the prediction columns added to every row."""
    if probs == "json":
        return list(PRED_COLUMNS)
    cols = [c for c in PRED_COLUMNS if c != "pred_probs"]
    return cols[:3] + [f"prob_{lab}" for lab in labels] + cols[3:]
