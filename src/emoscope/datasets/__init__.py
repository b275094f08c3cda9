"""Dataset readers: benchmark corpora and your own files, as :class:`Dataset` objects.

Known datasets (see :data:`DATASETS`) live in folders under a data root (see
:func:`data_root`): ``meld/``, ``emorynlp/``, ``goemotions/``, ``emobank/``, ``emobench/``,
``eqbench/``, ``esconv/``. Load labelled splits with :func:`load_dataset`, the benchmarks with
:func:`load_emobench`, :func:`load_eqbench` and
:func:`load_esconv`, and your own files with :func:`read_texts`,
:func:`read_dialogues` and :func:`read_dialogue_file`.

Malformed input raises :class:`~emoscope.errors.DataError` naming the file, the 1-based line
(where a record starts) and the expected format; pass ``skip_bad=True`` to skip such records
instead (counted in ``Dataset.skipped`` and reported by a :class:`DataWarning`). Missing data
raises :class:`~emoscope.errors.DatasetNotFoundError` saying where emoscope looked and where to
get the files.
"""

from __future__ import annotations

from emoscope.datasets._common import (
    DATASETS,
    ENV_VAR,
    DatasetInfo,
    DatasetOptionError,
    DataWarning,
    data_root,
    dataset_dir,
    load_dataset,
)
from emoscope.datasets.base import Dataset, Example
from emoscope.datasets.emobank import load_emobank, load_emobank_ratings
from emoscope.datasets.emobench import EmoBenchItem, load_emobench
from emoscope.datasets.emorynlp import load_emorynlp
from emoscope.datasets.eqbench import EQBenchItem, load_eqbench
from emoscope.datasets.esconv import (
    FailedConversation,
    SupportTurn,
    load_esconv,
    load_esconv_failed,
    load_esconv_strategies,
)
from emoscope.datasets.generic import (
    read_dialogue_file,
    read_dialogues,
    read_labelled_file,
    read_texts,
)
from emoscope.datasets.goemotions import load_goemotions
from emoscope.datasets.meld import load_meld
from emoscope.datasets.status import dataset_status

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "DataWarning",
    "Dataset",
    "DatasetInfo",
    "DatasetOptionError",
    "EQBenchItem",
    "EmoBenchItem",
    "Example",
    "FailedConversation",
    "SupportTurn",
    "data_root",
    "dataset_dir",
    "dataset_status",
    "load_dataset",
    "load_emobank",
    "load_emobank_ratings",
    "load_emobench",
    "load_emorynlp",
    "load_eqbench",
    "load_esconv",
    "load_esconv_failed",
    "load_esconv_strategies",
    "load_goemotions",
    "load_meld",
    "read_dialogue_file",
    "read_dialogues",
    "read_labelled_file",
    "read_texts",
]
