"""MELD (Poria et al., 2019): multi-party dialogues from *Friends*, one emotion per utterance.

Files: ``meld/{train,dev,test}_sent_emo.csv`` with the columns ``Sr No., Utterance, Speaker,
Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from emoscope.datasets._common import (
    BadRows,
    LabelNormalizer,
    Turn,
    assemble_dialogues,
    dataset_file,
    get_info,
    int_field,
    iter_table,
    label_mapper,
    make_dataset,
    normalize_split,
    register_loader,
    text_field,
)
from emoscope.datasets.base import Dataset
from emoscope.dialogue import Utterance
from emoscope.errors import DataError
from emoscope.labels import get_taxonomy

__all__ = ["load_meld"]

EXPECTED = (
    "MELD CSV with a header and the columns Sr No., Utterance, Speaker, Emotion, Sentiment, "
    "Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime"
)
REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
_META_COLUMNS = {
    "Sentiment": "sentiment",
    "StartTime": "start_time",
    "EndTime": "end_time",
}


def load_meld(
    split: str = "test",
    root: str | Path | None = None,
    *,
    taxonomy: str | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Load one split of MELD as dialogues.

    One :class:`~emoscope.dialogue.Dialogue` per ``Dialogue_ID`` (sorted numerically), its
    utterances ordered by ``Utterance_ID`` (numerically, so 10 follows 9). Each utterance has
    ``id = "<Dialogue_ID>_<Utterance_ID>"``, the speaker, and ``meta`` with ``sentiment``,
    ``season``, ``episode``, ``start_time`` and ``end_time``. Examples follow the same order,
    one per utterance, labelled with the canonical ``meld`` emotion (or its mapping into
    ``taxonomy``). Texts are kept as written (typographic quotes included), only stripped.

    Raises:
        DatasetNotFoundError: the split's file is missing.
        DataError: a malformed row (unless ``skip_bad``), including a repeated
            ``(Dialogue_ID, Utterance_ID)`` pair.
    """
    split = normalize_split(split)
    info = get_info("meld")
    path = dataset_file("meld", info.files[split], root)
    source = get_taxonomy("meld")
    normalize = LabelNormalizer(source)
    target, convert = label_mapper(source, taxonomy)
    bad = BadRows(skip_bad)

    groups: dict[int, list[Turn]] = defaultdict(list)
    seen: dict[tuple[int, int], int] = {}
    for line, row in iter_table(path, bad, expected=EXPECTED, required=REQUIRED):
        with bad:
            text = text_field(row["Utterance"], "Utterance", path, line, EXPECTED)
            label = normalize(row["Emotion"], path, line)
            did = int_field(row["Dialogue_ID"], "Dialogue_ID", path, line, EXPECTED)
            uid = int_field(row["Utterance_ID"], "Utterance_ID", path, line, EXPECTED)
            if (did, uid) in seen:
                raise DataError(
                    path,
                    line,
                    f"Dialogue_ID {did}, Utterance_ID {uid} repeats line {seen[did, uid]}",
                    "each (Dialogue_ID, Utterance_ID) pair once",
                )
            meta: dict[str, object] = {
                key: row[col].strip() for col, key in _META_COLUMNS.items() if col in row
            }
            for col in ("Season", "Episode"):
                if col in row:
                    meta[col.lower()] = int_field(row[col], col, path, line, EXPECTED)
            seen[did, uid] = line
            speaker = row["Speaker"].strip() or None
            utt = Utterance(text, speaker=speaker, id=f"{did}_{uid}", meta=meta)
            ex_meta: dict[str, object] = {"line": line, "emotion": label}
            if "sentiment" in meta:
                ex_meta["sentiment"] = meta["sentiment"]
            if "Sr No." in row:
                ex_meta["sr_no"] = row["Sr No."].strip()
            groups[did].append(Turn(uid, utt, convert((label,)), meta=ex_meta))

    dialogues, examples = assemble_dialogues(
        groups, {k: str(k) for k in groups}, sort_dialogues=True, sort_turns=True
    )
    return make_dataset(
        "meld", split, examples, path=path, bad=bad, taxonomy=target, dialogues=dialogues
    )


register_loader("meld", load_meld)
