"""Batch annotation of large files (the library behind ``emoscope annotate IN OUT``).

The input (CSV, TSV, JSON Lines or Parquet) is read as a stream of chunks; every row comes out
in the output, in input order, with prediction columns added:

``pred_label``, ``pred_labels`` (the predicted labels, best first), ``pred_confidence``,
``pred_probs`` (label → probability; or one ``prob_<label>`` column per label with
``probs="columns"``) and ``pred_valence``, ``pred_arousal``, ``pred_dominance`` (on [-1, 1];
empty when the recogniser predicts no VAD), ``pred_language`` (ISO 639-1 code of the detected
language, empty when not detected) and ``pred_warnings`` (the prediction's warnings, e.g.
``not-english: ...`` or ``context-truncated: ...``; see :mod:`emoscope.language`). In CSV and
Parquet output ``pred_labels``, ``pred_probs`` and ``pred_warnings`` are JSON text; in JSON Lines
they are lists and an object.

Texts are predicted one by one, or, with ``dialogue_col``, as conversations: consecutive rows
with the same dialogue id form one dialogue (ordered by ``turn_col`` if given, speakers from
``speaker_col``) and each utterance is read in the context of the turns before it. A chunk
always holds whole dialogues.

How a run works (and why it can be resumed):

1. *Plan*: one streaming pass over the input finds the byte range (CSV/JSONL) or row range
   (Parquet) of every chunk. The plan and the options are saved in ``OUT.parts/manifest.json``.
2. *Annotate*: chunks are handed to workers (``engine="local"``: processes on this machine;
   ``engine="ray"``: Ray Data actors, on a local Ray instance or a cluster). Each worker loads
   the recogniser once, reads its chunk straight from the input, and returns the annotated rows;
   the driver writes them to ``OUT.parts/chunk-NNNNNN.ext`` atomically (temporary file, then
   rename), after that chunk's bad rows.
3. *Finish*: the chunk files are concatenated in order into ``OUT`` (atomically), the bad rows
   into the side file, and the work folder is removed.

A run that is killed leaves complete chunk files only; ``resume=True`` checks that the input
and options are unchanged and annotates only the missing chunks, so no row is lost or repeated.

Bad rows never stop a run. A row whose text is missing, empty, not a string or longer than
``max_chars`` stays in the output with empty prediction columns; a row that cannot be read at
all (invalid JSON or UTF-8, a CSV record with the wrong number of fields) is left out of the
output. Both kinds are listed in the bad-rows file (JSON Lines: ``row`` = 1-based record number,
``line`` = 1-based line where the record starts, ``reason``, ``dropped``).

The package, one concept per module: :mod:`~emoscope.annotate.options` (options, work units,
results), :mod:`~emoscope.annotate.readers` (records and chunks of the input),
:mod:`~emoscope.annotate.plan`, :mod:`~emoscope.annotate.worker` (predict a chunk),
:mod:`~emoscope.annotate.output` (serialise it), :mod:`~emoscope.annotate.engine` (the
:class:`Engine` protocol) with :mod:`~emoscope.annotate.local` and
:mod:`~emoscope.annotate.ray_data`, and :mod:`~emoscope.annotate.driver` (:func:`annotate`).

Ray Data: Moritz et al. (2018), "Ray: A Distributed Framework for Emerging AI Applications",
OSDI; actors are used through ``Dataset.map_batches`` with a callable class.
"""

from emoscope.annotate.driver import annotate
from emoscope.annotate.engine import Engine, make_engine
from emoscope.annotate.options import (
    FORMATS,
    MANIFEST_VERSION,
    PRED_COLUMNS,
    AnnotateOptions,
    AnnotateResult,
    ChunkResult,
    ChunkSpec,
    Job,
    pred_columns,
)
from emoscope.annotate.plan import Plan, make_plan
from emoscope.annotate.ray_data import RayChunkAnnotator
from emoscope.annotate.worker import ChunkAnnotator

__all__ = [
    "FORMATS",
    "MANIFEST_VERSION",
    "PRED_COLUMNS",
    "AnnotateOptions",
    "AnnotateResult",
    "ChunkAnnotator",
    "ChunkResult",
    "ChunkSpec",
    "Engine",
    "Job",
    "Plan",
    "RayChunkAnnotator",
    "annotate",
    "make_engine",
    "make_plan",
    "pred_columns",
]
