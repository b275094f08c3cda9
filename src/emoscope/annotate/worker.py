"""The worker side of a run: read a chunk, predict its rows, serialise the annotated rows."""

from __future__ import annotations

import json
import math
import sys
from typing import TYPE_CHECKING, Any

from emoscope.annotate.options import ChunkResult, ChunkSpec, Job, pred_columns
from emoscope.annotate.output import serialise
from emoscope.annotate.readers import _preview, _read_chunk, _Row
from emoscope.recognizers.base import MAX_TEXT_CHARS_ENV, max_text_chars

if TYPE_CHECKING:
    from emoscope.dialogue import Dialogue
    from emoscope.prediction import EmotionPrediction
    from emoscope.recognizers.base import Recognizer

__all__ = ["ChunkAnnotator"]


def _text_problem(
    record: dict[str, Any], col: str, max_chars: int, limit_name: str = "--max-chars"
) -> str | None:
    if col not in record:
        return f"no {col!r} field"
    value = record[col]
    if value is None:
        return f"{col!r} is null"
    if not isinstance(value, str):
        return f"{col!r} is not text ({type(value).__name__})"
    if not value.strip():
        return f"{col!r} is empty"
    if len(value) > max_chars:
        return f"{col!r} has {len(value):,} characters; the limit is {max_chars:,} ({limit_name})"
    return None


def _turn_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        if math.isnan(value):
            raise ValueError
        return float(value)
    if isinstance(value, str):
        x = float(value.strip())
        if math.isnan(x):
            raise ValueError
        return x
    raise ValueError


class ChunkAnnotator:
    """Annotates chunks of one job; holds the recogniser (loaded once per process or actor)."""

    def __init__(self, job: Job, recognizer: Recognizer | None = None) -> None:
        from emoscope.recognizers.base import load_recognizer

        self.job = job
        opts = job.options
        assert opts.recognizer is not None
        self.recognizer = recognizer if recognizer is not None else load_recognizer(opts.recognizer)
        if job.threads > 0 and "torch" in sys.modules:
            import torch

            torch.set_num_threads(job.threads)
        if opts.taxonomy is not None:
            from emoscope._views import route
            from emoscope.labels import get_taxonomy

            self.recognizer = route(self.recognizer, get_taxonomy(opts.taxonomy))
        self.pred_cols = pred_columns(opts.probs, job.labels)

    # -- predictions --------------------------------------------------------------------------
    def _predict_groups(
        self, groups: list[list[str | Dialogue]]
    ) -> list[list[EmotionPrediction] | Exception]:
        """Predict each group's inputs; on failure retry group by group, so one bad input
        only costs its own group."""
        flat = [x for g in groups for x in g]
        try:
            preds = self.recognizer.predict(flat)
        except Exception:
            preds = None
        if preds is not None:
            out: list[list[EmotionPrediction] | Exception] = []
            it = iter(preds)
            for g in groups:
                n = sum(len(x) if not isinstance(x, str) else 1 for x in g)
                out.append([next(it) for _ in range(n)])
            return out
        results: list[list[EmotionPrediction] | Exception] = []
        for g in groups:
            try:
                results.append(self.recognizer.predict(g))
            except Exception as e:
                results.append(e)
        return results

    def _predict_texts(self, rows: list[_Row]) -> dict[int, EmotionPrediction]:
        col = self.job.options.text_col
        good = [r for r in rows if r.problem is None]
        if not good:
            return {}
        groups: list[list[str | Dialogue]] = []
        # Batches of 256 texts: a failing text costs its batch one retry text by text.
        for i in range(0, len(good), 256):
            groups.append([r.record[col] for r in good[i : i + 256]])  # type: ignore[index]
        results = self._predict_groups(groups)
        out: dict[int, EmotionPrediction] = {}
        for b, res in enumerate(results):
            batch = good[b * 256 : (b + 1) * 256]
            if isinstance(res, Exception):
                singles = self._predict_groups([[r.record[col]] for r in batch])  # type: ignore[index]
                for r, one in zip(batch, singles, strict=True):
                    if isinstance(one, Exception):
                        r.problem = f"the recogniser failed: {_one_line(one)}"
                    else:
                        out[r.row] = one[0]
            else:
                for r, p in zip(batch, res, strict=True):
                    out[r.row] = p
        return out

    def _predict_dialogues(self, rows: list[_Row]) -> dict[int, EmotionPrediction]:
        from emoscope.dialogue import Dialogue, Utterance

        opts = self.job.options
        dcol, scol, tcol = opts.dialogue_col or "", opts.speaker_col, opts.turn_col
        dialogues: list[tuple[Any, list[_Row]]] = []
        for r in rows:
            if r.problem is not None or r.record is None:
                continue
            key = r.record.get(dcol)
            if key is None or (isinstance(key, str) and not key.strip()):
                r.problem = f"{dcol!r} (the dialogue id) is empty"
                continue
            if dialogues and dialogues[-1][0] == key:
                dialogues[-1][1].append(r)
            else:
                dialogues.append((key, [r]))
        inputs: list[list[str | Dialogue]] = []
        members: list[list[_Row]] = []
        for key, turns in dialogues:
            if tcol is not None:
                numbered = []
                for r in turns:
                    try:
                        numbered.append((_turn_number(r.record.get(tcol)), r))  # type: ignore[union-attr]
                    except (TypeError, ValueError):
                        r.problem = (
                            f"{tcol!r} (the turn) is {_preview(r.record.get(tcol))!r}, not a number"  # type: ignore[union-attr]
                        )
                turns = [r for _, r in sorted(numbered, key=lambda t: t[0])]
            if not turns:
                continue
            utts = []
            for r in turns:
                rec = r.record or {}
                speaker = rec.get(scol) if scol is not None else None
                utts.append(
                    Utterance(rec[opts.text_col], None if speaker is None else str(speaker))
                )
            inputs.append([Dialogue(utts, id=str(key))])
            members.append(turns)
        out: dict[int, EmotionPrediction] = {}
        for turns, res in zip(members, self._predict_groups(inputs), strict=True):
            if isinstance(res, Exception):
                for r in turns:
                    r.problem = f"the recogniser failed on this row's dialogue: {_one_line(res)}"
                continue
            for r, p in zip(turns, res, strict=True):
                out[r.row] = p
        return out

    # -- output -------------------------------------------------------------------------------
    def _pred_values(self, p: EmotionPrediction | None, structured: bool) -> dict[str, Any]:
        cols = self.pred_cols
        if p is None:
            return dict.fromkeys(cols)
        probs = {k: round(v, 6) for k, v in p.probs.items()}
        vad = p.vad or (None, None, None)
        d: dict[str, Any] = {
            "pred_label": p.label,
            "pred_labels": list(p.labels) if structured else json.dumps(list(p.labels)),
            "pred_confidence": round(p.confidence, 6),
        }
        if self.job.options.probs == "json":
            d["pred_probs"] = probs if structured else json.dumps(probs, ensure_ascii=False)
        else:
            for lab in self.job.labels:
                d[f"prob_{lab}"] = probs.get(lab)
        for name, x in zip(("valence", "arousal", "dominance"), vad, strict=True):
            d[f"pred_{name}"] = None if x is None else round(float(x), 6)
        d["pred_language"] = p.language
        warns = list(p.warnings)
        d["pred_warnings"] = warns if structured else json.dumps(warns, ensure_ascii=False)
        return {c: d.get(c) for c in cols}

    def __call__(self, spec: ChunkSpec) -> ChunkResult:
        """Annotate one chunk."""
        opts = self.job.options
        rows = _read_chunk(self.job, spec)
        # predict() refuses texts over the shared per-text limit: such rows are bad rows too.
        shared = max_text_chars()
        limit, name = (
            (opts.max_chars, "--max-chars")
            if opts.max_chars <= shared
            else (shared, MAX_TEXT_CHARS_ENV)
        )
        for r in rows:
            if r.problem is None and r.record is not None:
                r.problem = _text_problem(r.record, opts.text_col, limit, name)
        preds = self._predict_dialogues(rows) if opts.dialogue_col else self._predict_texts(rows)
        out_fmt = self.job.out_format
        structured = out_fmt == "jsonl"
        records: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for r in rows:
            if r.problem is not None:
                entry: dict[str, Any] = {"row": r.row + 1}
                if r.line:
                    entry["line"] = r.line
                entry["reason"] = r.problem
                entry["dropped"] = r.record is None
                if r.record is not None and opts.text_col in r.record:
                    entry["text"] = _preview(r.record[opts.text_col])
                bad.append(entry)
            if r.record is None:
                continue
            records.append({**r.record, **self._pred_values(preds.get(r.row), structured)})
        return ChunkResult(spec.index, len(rows), serialise(self.job, records, self.pred_cols), bad)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
