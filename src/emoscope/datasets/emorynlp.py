"""EmoryNLP (Zahiri & Choi, 2018): *Friends* scenes labelled with Willcox's feeling wheel.

Files: ``emorynlp/emorynlp_{train,dev,test}_final.csv`` with the columns ``Utterance, Speaker,
Emotion, Scene_ID, Utterance_ID, Season, Episode, Start_Time, End_Time``. ``Speaker`` holds a
Python list literal such as ``['Monica Geller']``.
"""

from __future__ import annotations

import ast
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

__all__ = ["load_emorynlp", "parse_speakers"]

EXPECTED = (
    "EmoryNLP CSV with a header and the columns Utterance, Speaker, Emotion, Scene_ID, "
    "Utterance_ID, Season, Episode, Start_Time, End_Time"
)
REQUIRED = ("Utterance", "Speaker", "Emotion", "Scene_ID", "Utterance_ID", "Season", "Episode")
SPEAKER_EXPECTED = "a list of names such as ['Monica Geller'] or ['Ross Geller', 'Joey Tribbiani']"


def parse_speakers(value: str) -> list[str]:
    """The speaker names in an EmoryNLP ``Speaker`` cell.

    The cell is a Python list literal (``"['Monica Geller', 'Ross Geller']"``), read with
    :func:`ast.literal_eval`, which evaluates literals only. A cell that does not start with
    ``[`` is taken as a single plain name.

    Raises:
        ValueError: the cell looks like a list but is not a list of strings.
    """
    value = value.strip()
    if not value:
        return []
    if not value.startswith("["):
        return [value]
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"unreadable speaker list {value!r}") from None
    if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
        raise ValueError(f"speaker cell {value!r} is not a list of strings")
    return [s.strip() for s in parsed if s.strip()]


def load_emorynlp(
    split: str = "test",
    root: str | Path | None = None,
    *,
    taxonomy: str | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Load one split of EmoryNLP as dialogues.

    A dialogue is a scene, keyed by ``(Season, Episode, Scene_ID)`` and sorted by that key;
    its utterances are ordered by ``Utterance_ID`` (numerically). Dialogue ids read
    ``"<season>_<episode>_<scene>"`` and utterance ids ``"<dialogue id>_<Utterance_ID>"``.
    Several speakers are joined with ``" & "``; an empty list gives ``speaker=None``. Labels
    are the lowercase ``emorynlp`` names (or their mapping into ``taxonomy``).

    Raises:
        DatasetNotFoundError: the split's file is missing.
        DataError: a malformed row (unless ``skip_bad``).
    """
    split = normalize_split(split)
    info = get_info("emorynlp")
    path = dataset_file("emorynlp", info.files[split], root)
    source = get_taxonomy("emorynlp")
    normalize = LabelNormalizer(source)
    target, convert = label_mapper(source, taxonomy)
    bad = BadRows(skip_bad)

    groups: dict[tuple[int, int, int], list[Turn]] = defaultdict(list)
    seen: dict[tuple[int, int, int, int], int] = {}
    for line, row in iter_table(path, bad, expected=EXPECTED, required=REQUIRED):
        with bad:
            text = text_field(row["Utterance"], "Utterance", path, line, EXPECTED)
            label = normalize(row["Emotion"], path, line)
            key = (
                int_field(row["Season"], "Season", path, line, EXPECTED),
                int_field(row["Episode"], "Episode", path, line, EXPECTED),
                int_field(row["Scene_ID"], "Scene_ID", path, line, EXPECTED),
            )
            uid = int_field(row["Utterance_ID"], "Utterance_ID", path, line, EXPECTED)
            try:
                speakers = parse_speakers(row["Speaker"])
            except ValueError as e:
                raise DataError(path, line, str(e), SPEAKER_EXPECTED) from None
            if (*key, uid) in seen:
                raise DataError(
                    path,
                    line,
                    f"Utterance_ID {uid} of season {key[0]}, episode {key[1]}, scene {key[2]} "
                    f"repeats line {seen[(*key, uid)]}",
                    "each utterance of a scene once",
                )
            seen[(*key, uid)] = line
            did = "_".join(map(str, key))
            meta: dict[str, object] = {
                "season": key[0],
                "episode": key[1],
                "scene": key[2],
                "speakers": speakers,
            }
            for col, name in (("Start_Time", "start_time"), ("End_Time", "end_time")):
                if col in row:
                    meta[name] = row[col].strip()
            utt = Utterance(
                text, speaker=" & ".join(speakers) or None, id=f"{did}_{uid}", meta=meta
            )
            ex_meta = {"line": line, "emotion": label}
            groups[key].append(Turn(uid, utt, convert((label,)), meta=ex_meta))

    dialogues, examples = assemble_dialogues(
        groups, {k: "_".join(map(str, k)) for k in groups}, sort_dialogues=True, sort_turns=True
    )
    return make_dataset(
        "emorynlp", split, examples, path=path, bad=bad, taxonomy=target, dialogues=dialogues
    )


register_loader("emorynlp", load_emorynlp)
