"""Batch annotation: formats, bad rows, dialogue grouping, resume after SIGKILL, engines, CLI."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emoscope import cli, load_recognizer
from emoscope.annotate import (
    PRED_COLUMNS,
    AnnotateOptions,
    ChunkAnnotator,
    ChunkResult,
    ChunkSpec,
    Engine,
    Job,
    annotate,
    make_engine,
    make_plan,
)
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.recognizers.base import Recognizer

TESTS = Path(__file__).resolve().parents[1]
MELD = TESTS.parents[1] / "shared" / "data" / "meld" / "train_sent_emo.csv"
WORDS = ["I love this", "so furious right now", "thanks a lot", "wow what a surprise",
         "this is gross", "I am scared", "sad news today", "okay then"]  # fmt: skip
LEX = AnnotateOptions(recognizer="lexicon")


def _write_csv(path: Path, rows: list[list[object]], header: list[str]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _texts(n: int) -> list[list[object]]:
    return [[i, WORDS[i % len(WORDS)] + f" #{i}"] for i in range(n)]


# ------------------------------------------------------------------------------------------
# Formats and output columns
# ------------------------------------------------------------------------------------------


def test_csv_rows_come_back_unchanged_with_predictions(tmp_path: Path) -> None:
    rows = _texts(30)
    rows[4][1] = 'two\nlines, with "quotes" and, commas'
    rows[9][1] = "naïve café — ünïcode 😀"
    src = _write_csv(tmp_path / "in.csv", rows, ["id", "text"])
    res = annotate(src, tmp_path / "out.csv", dataclasses_replace(LEX, chunk_size=7),
                   workers=1, progress=False)  # fmt: skip
    assert (res.rows, res.written, res.bad, res.chunks) == (30, 30, 0, 5)
    out = _read_csv(tmp_path / "out.csv")
    assert [r["id"] for r in out] == [str(r[0]) for r in rows]
    assert [r["text"] for r in out] == [r[1] for r in rows]
    assert list(out[0]) == ["id", "text", *PRED_COLUMNS]
    want = load_recognizer("lexicon").predict([str(r[1]) for r in rows])
    for got, p in zip(out, want, strict=True):
        assert got["pred_label"] == p.label
        assert json.loads(got["pred_labels"]) == list(p.labels)
        assert float(got["pred_confidence"]) == pytest.approx(p.confidence, abs=1e-6)
        probs = json.loads(got["pred_probs"])
        assert list(probs) == list(get_taxonomy("goemotions").labels)
        assert probs[p.label] == pytest.approx(p.probs[p.label], abs=1e-6)
        assert p.vad is not None
        assert float(got["pred_valence"]) == pytest.approx(p.vad[0], abs=1e-6)
    assert res.bad_rows_file.read_text() == ""  # always written, empty when all rows are fine
    assert not (tmp_path / "out.csv.parts").exists()


def dataclasses_replace(opts: AnnotateOptions, **kw: object) -> AnnotateOptions:
    return dataclasses.replace(opts, **kw)  # type: ignore[arg-type]


def test_jsonl_to_parquet_to_tsv_with_prob_columns_and_taxonomy(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    src = tmp_path / "in.jsonl"
    recs = [{"id": i, "text": WORDS[i % 8], "meta": {"k": i}, "score": i / 2} for i in range(25)]
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    opts = dataclasses_replace(LEX, chunk_size=10, taxonomy="ekman", probs="columns")
    annotate(src, tmp_path / "out.parquet", opts, workers=1, progress=False)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 25
    assert table.column("id").to_pylist() == list(range(25))
    assert table.column("meta").to_pylist()[3] == {"k": 3}
    assert table.schema.field("score").type == pa.float64()
    ekman = get_taxonomy("ekman").labels
    assert [f"prob_{lab}" for lab in ekman] == [
        c for c in table.column_names if c.startswith("prob_")
    ]
    assert set(table.column("pred_label").to_pylist()) <= set(ekman)
    row = table.slice(0, 1).to_pylist()[0]
    assert sum(row[f"prob_{lab}"] for lab in ekman) == pytest.approx(1, abs=1e-4)

    # Parquet in (several row groups, chunks crossing them) → TSV out.
    keep = ["id", "text", "meta", "score", "prob_joy"]
    pq.write_table(table.select(keep), tmp_path / "groups.parquet", row_group_size=4)
    annotate(tmp_path / "groups.parquet", tmp_path / "again.jsonl",
             dataclasses_replace(LEX, chunk_size=6), workers=1, progress=False)  # fmt: skip
    rows = _read_jsonl(tmp_path / "again.jsonl")
    assert [r["id"] for r in rows] == list(range(25))
    assert rows[0]["prob_joy"] == row["prob_joy"]  # original columns kept as they were
    assert isinstance(rows[0]["pred_probs"], dict) and isinstance(rows[0]["pred_labels"], list)

    annotate(src, tmp_path / "out.tsv", LEX, workers=1, progress=False)
    with open(tmp_path / "out.tsv", encoding="utf-8", newline="") as fh:
        tsv = list(csv.DictReader(fh, delimiter="\t"))
    assert len(tsv) == 25 and json.loads(tsv[2]["meta"]) == {"k": 2}


def test_bad_rows_go_to_the_side_file_and_the_run_goes_on(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 0, "text": "I love it"}),
        json.dumps({"id": 1, "text": ""}),
        "{not json",
        json.dumps({"id": 3, "text": 42}),
        json.dumps([1, 2]),
        "",
        json.dumps({"id": 5, "text": None}),
        json.dumps({"id": 6, "text": "x" * 60}),
        json.dumps({"id": 7, "body": "no text"}),
        json.dumps({"id": 8, "text": "thanks so much"}),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": 9, "text": "\xff\xfe"}\n')
    side = tmp_path / "bad.jsonl"
    opts = dataclasses_replace(LEX, chunk_size=3, max_chars=50)
    res = annotate(src, tmp_path / "out.jsonl", opts, workers=1, bad_rows=side, progress=False)
    bad = _read_jsonl(side)
    assert [(b["row"], b["line"]) for b in bad] == [
        (2, 2), (3, 3), (4, 4), (5, 5), (6, 7), (7, 8), (8, 9), (10, 11)
    ]  # fmt: skip
    reasons = [str(b["reason"]) for b in bad]
    assert reasons[0] == "'text' is empty"
    assert reasons[1].startswith("not valid JSON")
    assert reasons[2] == "'text' is not text (int)"
    assert reasons[3] == "not a JSON object (list)"
    assert reasons[4] == "'text' is null"
    assert reasons[5] == "'text' has 60 characters; the limit is 50 (--max-chars)"
    assert reasons[6] == "no 'text' field"
    assert reasons[7] == "not valid UTF-8"
    assert [b["dropped"] for b in bad] == [False, True, False, True, False, False, False, True]
    out = _read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == [0, 1, 3, 5, 6, 7, 8]
    assert (res.rows, res.bad, res.written) == (10, 8, 7)
    by_id = {r["id"]: r for r in out}
    assert by_id[0]["pred_label"] and by_id[8]["pred_label"] == "gratitude"
    assert by_id[1]["pred_label"] is None and by_id[3]["pred_probs"] is None


def test_a_recogniser_failure_costs_only_its_rows(tmp_path: Path) -> None:
    rows = _texts(12)
    rows[5][1] = "this will go boom"
    src = _write_csv(tmp_path / "in.csv", rows, ["id", "text"])
    opts = AnnotateOptions(recognizer="scale_helpers:FragileRecognizer", chunk_size=5)
    res = annotate(src, tmp_path / "out.csv", opts, workers=1, progress=False)
    out = _read_csv(tmp_path / "out.csv")
    assert len(out) == 12 and res.bad == 1
    assert out[5]["pred_label"] == "" and all(r["pred_label"] for i, r in enumerate(out) if i != 5)
    [bad] = _read_jsonl(res.bad_rows_file)
    assert bad["row"] == 6 and "the recogniser failed: RuntimeError: boom" in str(bad["reason"])


# ------------------------------------------------------------------------------------------
# Dialogues
# ------------------------------------------------------------------------------------------


def _dialogue_rows() -> list[list[object]]:
    rows: list[list[object]] = []
    sizes = [3, 5, 1, 4, 6, 2]
    for d, n in enumerate(sizes):
        for t in reversed(range(n)):  # turns stored newest first: --turn-col must reorder
            rows.append([f"d{d}", "AB"[t % 2], t, f"{WORDS[t % 8]} turn {t}", len(rows)])
    return rows


def test_dialogues_are_grouped_ordered_by_turn_and_never_split(tmp_path: Path) -> None:
    rows = _dialogue_rows()
    rows[7][3] = ""  # a bad row inside dialogue d1 does not break the dialogue
    header = ["dlg", "spk", "turn", "utterance", "id"]
    src = _write_csv(tmp_path / "in.csv", rows, header)
    opts = AnnotateOptions(recognizer="scale_helpers:PositionRecognizer", text_col="utterance",
                           dialogue_col="dlg", speaker_col="spk", turn_col="turn",
                           chunk_size=4)  # fmt: skip
    plan = make_plan(src, "csv", opts)
    starts = [c.first_row for c in plan.chunks]
    assert all(s == 0 or rows[s][0] != rows[s - 1][0] for s in starts)  # cuts between dialogues
    assert [c.n_rows for c in plan.chunks] == [8, 5, 6, 2]
    res = annotate(src, tmp_path / "out.csv", opts, workers=1, progress=False)
    out = _read_csv(tmp_path / "out.csv")
    assert [int(r["id"]) for r in out] == list(range(len(rows)))
    labels = get_taxonomy("goemotions").labels
    for r in out:
        if r["id"] == "7":
            assert r["pred_label"] == ""
            continue
        turn = int(r["turn"])
        # d1 lost turn rows[7] (turn 4 of 5): turns after it have one context turn fewer.
        expected = turn - (1 if r["dlg"] == "d1" and turn > int(rows[7][2]) else 0)
        assert r["pred_label"] == labels[expected], r
    assert res.bad == 1


def test_speakers_reach_the_recogniser(tmp_path: Path) -> None:
    rows = _dialogue_rows()
    src = _write_csv(tmp_path / "in.csv", rows, ["dlg", "spk", "turn", "text", "id"])
    seen: list[tuple[str | None, int]] = []

    class Spy:
        name = "spy"

        def __init__(self) -> None:
            self.inner = load_recognizer("lexicon")
            self.taxonomy, self.labels = self.inner.taxonomy, self.inner.labels

        def predict(self, inputs):  # type: ignore[no-untyped-def]
            for d in inputs:
                seen.extend((u.speaker, len(d)) for u in d.utterances)
            return self.inner.predict(inputs)

    opts = AnnotateOptions(recognizer="spy", dialogue_col="dlg", speaker_col="spk", chunk_size=50)
    annotate(src, tmp_path / "o.csv", opts, workers=1, progress=False, recognizer=Spy())  # type: ignore[arg-type]
    assert [s for s, _ in seen] == [r[1] for r in rows]
    assert [n for _, n in seen] == [3] * 3 + [5] * 5 + [1] + [4] * 4 + [6] * 6 + [2] * 2


# ------------------------------------------------------------------------------------------
# Resume
# ------------------------------------------------------------------------------------------


def _env(delay: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "EMOSCOPE_TEST_DELAY": delay}


def test_resume_after_sigkill_loses_and_repeats_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 400
    src = _write_csv(tmp_path / "in.csv", _texts(n), ["id", "text"])
    out = tmp_path / "out.csv"
    work = tmp_path / "out.csv.parts"
    cmd = [sys.executable, "-m", "emoscope.cli", "annotate", str(src), str(out),
           "--chunk-size", "20", "-r", "scale_helpers:SlowRecognizer", "--workers", "2",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env("0.12"), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    try:
        while len(list(work.glob("chunk-*.csv"))) < 4:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes, mid-write
        proc.wait(timeout=10)
    done_before = len(list(work.glob("chunk-*.csv")))
    assert 4 <= done_before < 20 and not out.exists()

    monkeypatch.setenv("EMOSCOPE_TEST_DELAY", "0")
    opts = AnnotateOptions(recognizer="scale_helpers:SlowRecognizer", chunk_size=20)
    with pytest.raises(EmoscopeError, match="add --resume"):
        annotate(src, out, opts, workers=1, progress=False)
    with pytest.raises(EmoscopeError, match="chunk_size: 20 then, 10 now"):
        annotate(src, out, dataclasses_replace(opts, chunk_size=10), resume=True, progress=False)
    res = annotate(src, out, opts, workers=1, resume=True, progress=False)
    assert res.resumed_chunks >= done_before and res.processed_rows == n - 20 * res.resumed_chunks
    rows = _read_csv(out)
    assert [int(r["id"]) for r in rows] == list(range(n))  # every row once, in order
    assert all(r["pred_label"] for r in rows)
    # The same as a run that was never interrupted.
    annotate(src, tmp_path / "ref.csv", opts, workers=1, progress=False)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert not work.exists()


def test_resume_checks_that_the_input_is_unchanged(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", _texts(10), ["id", "text"])
    out = tmp_path / "out.jsonl"
    work = tmp_path / "out.jsonl.parts"
    annotate(src, out, LEX, workers=1, progress=False)
    # Fake an interrupted run: the manifest of a plan, no chunks.
    from emoscope._io import write_json
    from emoscope.annotate import MANIFEST_VERSION
    from emoscope.annotate.driver import _identity

    plan = make_plan(src, "csv", LEX)
    ident = _identity(src, "csv", "jsonl", LEX)
    manifest = {"version": MANIFEST_VERSION, "identity": ident, "plan": plan.to_dict()}
    write_json(work / "manifest.json", manifest)
    src.write_text(src.read_text() + "10,more text\n", encoding="utf-8")
    with pytest.raises(EmoscopeError, match=r"cannot resume .*differs \(size: "):
        annotate(src, out, LEX, resume=True, progress=False)


# ------------------------------------------------------------------------------------------
# Engines
# ------------------------------------------------------------------------------------------


def test_local_workers_give_the_same_output_as_one_process(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", _texts(300), ["id", "text"])
    opts = dataclasses_replace(LEX, chunk_size=40)
    one = annotate(src, tmp_path / "one.csv", opts, workers=1, progress=False)
    two = annotate(src, tmp_path / "two.csv", opts, workers=2, progress=False)
    assert (one.workers, two.workers) == (1, 2)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


class _ReversedEngine:
    """An :class:`~emoscope.annotate.engine.Engine` of our own: this process, last chunk first."""

    name = "reversed"
    workers = 1

    def worker_threads(self, cpus: int) -> int:
        return 0

    def run(
        self, job: Job, pending: list[ChunkSpec], recognizer: Recognizer
    ) -> Iterator[ChunkResult]:
        annotator = ChunkAnnotator(job, recognizer)
        for spec in reversed(pending):
            yield annotator(spec)


def test_any_engine_can_run_the_chunks_and_the_output_keeps_input_order(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", _texts(40), ["id", "text"])
    opts = dataclasses_replace(LEX, chunk_size=7)
    engine: Engine = _ReversedEngine()
    res = annotate(src, tmp_path / "rev.csv", opts, engine=engine, progress=False)
    annotate(src, tmp_path / "ref.csv", opts, workers=1, progress=False)
    assert (res.engine, res.workers, res.chunks, res.rows) == ("reversed", 1, 6, 40)
    assert (tmp_path / "rev.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert (make_engine("local", 3).workers, make_engine("ray").workers) == (3, 0)
    assert (
        make_engine("local", 4).worker_threads(8) == 2 and make_engine("ray").worker_threads(8) == 1
    )
    with pytest.raises(EmoscopeError, match="unknown engine 'gpu'"):
        make_engine("gpu")


def test_workers_load_the_recogniser_once_each(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "in.csv", _texts(60), ["id", "text"])
    opts = AnnotateOptions(recognizer="scale_helpers:PidRecognizer", chunk_size=5, probs="json")
    annotate(src, tmp_path / "out.jsonl", opts, workers=2, progress=False)
    out = _read_jsonl(tmp_path / "out.jsonl")
    # PidRecognizer predicts the label numbered by how many instances its process has built.
    assert {r["pred_label"] for r in out} == {get_taxonomy("goemotions").labels[1]}


def test_ray_actor_class_annotates_chunks(tmp_path: Path) -> None:
    """The callable class given to map_batches, called as Ray Data calls it (no Ray needed)."""
    import pickle

    from emoscope.annotate import RayChunkAnnotator
    from emoscope.annotate.driver import _identity

    src = _write_csv(tmp_path / "in.csv", _texts(50), ["id", "text"])
    opts = dataclasses_replace(LEX, chunk_size=20)
    plan = make_plan(src, "csv", opts)
    job = Job(str(src), "csv", "jsonl", tuple(plan.columns), opts,
              get_taxonomy("goemotions").labels, "goemotions", 1)  # fmt: skip
    actor = RayChunkAnnotator(pickle.dumps(job))
    batch = {"spec": [json.dumps(dataclasses.asdict(c)) for c in plan.chunks]}
    results = [pickle.loads(b) for b in actor(batch)["result"]]
    assert [r.index for r in results] == [0, 1, 2] and [r.n_rows for r in results] == [20, 20, 10]
    rows = [json.loads(line) for r in results for line in r.data.decode().splitlines()]
    assert [int(r["id"]) for r in rows] == list(range(50))
    assert _identity(src, "csv", "jsonl", opts)["options"]["chunk_size"] == 20


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own
def test_ray_engine_on_a_local_instance_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--engine ray`` through the CLI: a local Ray instance is started (about 10 s on a busy
    2-core machine), two actors annotate the chunks, the instance is shut down again."""
    pytest.importorskip("ray.data", reason="--engine ray needs Ray Data: pip install 'ray[data]'")
    import ray

    # The actors import the recogniser's module themselves (as on a cluster, where it must be
    # installed on every node); the local instance passes this environment on to them.
    monkeypatch.setenv("PYTHONPATH", _env("0")["PYTHONPATH"])
    src = _write_csv(tmp_path / "in.csv", _texts(120), ["id", "text"])
    args = ["annotate", str(src), str(tmp_path / "ray.csv"), "-r", "scale_helpers:PidRecognizer",
            "--chunk-size", "30", "--engine", "ray", "--workers", "2", "--no-progress"]  # fmt: skip
    start = time.monotonic()
    code, err = _run_cli(args, capsys)
    print(f"ray engine: {time.monotonic() - start:.1f}s")
    assert code == 0, err
    assert "annotated 120 rows (0 bad" in err
    assert not ray.is_initialized()  # the instance this run started is gone
    out = _read_csv(tmp_path / "ray.csv")
    assert [int(r["id"]) for r in out] == list(range(120))
    # PidRecognizer: label 1 everywhere = each actor built its recogniser exactly once.
    assert {r["pred_label"] for r in out} == {get_taxonomy("goemotions").labels[1]}
    opts = AnnotateOptions(recognizer="scale_helpers:PidRecognizer", chunk_size=30)
    annotate(src, tmp_path / "local.csv", opts, workers=2, progress=False)
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


# ------------------------------------------------------------------------------------------
# CLI and errors
# ------------------------------------------------------------------------------------------


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    code = exc.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


def test_cli_annotates_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "in.csv", [[0, "I love it"], [1, ""]], ["id", "body"])
    out = tmp_path / "out.csv"
    args = ["annotate", str(src), str(out), "--text-col", "body", "-r", "lexicon",
            "--workers", "1", "--bad-rows", str(tmp_path / "b.jsonl")]  # fmt: skip
    code, err = _run_cli(args, capsys)
    assert code == 0, err
    assert "annotated 2 rows (1 bad" in err and f"wrote {out}" in err
    assert "rows/s" in err
    assert len(_read_csv(out)) == 2 and len(_read_jsonl(tmp_path / "b.jsonl")) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--text-col", "nope"], "no column 'nope'; the columns are: 'id', 'text'"),
        (["--engine", "spark"], "unknown engine 'spark'"),
        (["--speaker-col", "id"], "--speaker-col and --turn-col need --dialogue-col"),
        (["--probs", "wide"], "probs must be 'json' or 'columns'"),
        (["--taxonomy", "colours"], "unknown taxonomy 'colours'"),
        (["-r", "nope"], "unknown recogniser 'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    src = _write_csv(tmp_path / "in.csv", _texts(3), ["id", "text"])
    base = ["-r", "lexicon"] if "-r" not in args else []
    code, err = _run_cli(["annotate", str(src), str(tmp_path / "o.csv"), *base, *args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], err
    assert "Traceback" not in err


def test_input_problems_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EmoscopeError, match="no such file"):
        annotate(tmp_path / "missing.csv", tmp_path / "o.csv", LEX)
    src = _write_csv(tmp_path / "in.csv", _texts(3), ["id", "text"])
    with pytest.raises(EmoscopeError, match=r"unsupported output file type '\.xlsx'"):
        annotate(src, tmp_path / "o.xlsx", LEX)
    with pytest.raises(EmoscopeError, match="overwrite the input"):
        annotate(src, src, LEX)
    clash = _write_csv(tmp_path / "c.csv", [[0, "hi", "x"]], ["id", "text", "pred_label"])
    with pytest.raises(EmoscopeError, match="already has a column 'pred_label'"):
        annotate(clash, tmp_path / "o.csv", LEX, progress=False)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmoscopeError, match="the file is empty"):
        annotate(tmp_path / "empty.csv", tmp_path / "o2.csv", LEX, progress=False)
    one = _write_csv(tmp_path / "d.csv", [["d", i, "hi"] for i in range(60)], ["dlg", "t", "text"])
    opts = dataclasses_replace(LEX, dialogue_col="dlg", chunk_size=1)
    with pytest.raises(EmoscopeError, match="dialogue 'd' from row 1 has more than 50 rows"):
        annotate(one, tmp_path / "o3.csv", opts, progress=False)


@pytest.mark.skipif(not MELD.is_file(), reason=f"MELD is not at {MELD}")
def test_real_meld_dialogues(tmp_path: Path) -> None:
    with open(MELD, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [next(reader) for _ in range(300)]
    src = _write_csv(tmp_path / "meld.csv", rows, header)  # a small slice, in tmp only
    opts = AnnotateOptions(recognizer="lexicon", text_col="Utterance", dialogue_col="Dialogue_ID",
                           speaker_col="Speaker", turn_col="Utterance_ID", chunk_size=64,
                           taxonomy="meld")  # fmt: skip
    res = annotate(src, tmp_path / "out.csv", opts, workers=1, progress=False)
    out = _read_csv(tmp_path / "out.csv")
    assert len(out) == res.rows == 300 and res.bad == 0
    assert {r["pred_label"] for r in out} <= set(get_taxonomy("meld").labels)
    assert [list(r.values())[: len(header)] for r in out] == rows  # input columns unchanged


@pytest.fixture(scope="module")
def default_model_folder(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scale_helpers import tiny_encoder_folder

    return tiny_encoder_folder(tiny_base_model, tmp_path_factory.mktemp("default-model"))


def test_cli_uses_the_default_model_when_no_recogniser_is_named(
    default_model_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No --recognizer: the default (encoder) model, here a tiny untrained one put where the
    shipped model lives, read through the real loading path."""
    import emoscope
    from scale_helpers import use_as_default_model

    use_as_default_model(monkeypatch, default_model_folder)
    rows = _texts(20)
    src = _write_csv(tmp_path / "in.csv", rows, ["id", "text"])
    out = tmp_path / "out.jsonl"
    code, err = _run_cli(["annotate", str(src), str(out), "--workers", "1", "--no-progress",
                          "--chunk-size", "8"], capsys)  # fmt: skip
    assert code == 0, err
    assert "not installed" not in err and "annotated 20 rows (0 bad" in err
    got = _read_jsonl(out)
    want = emoscope.load().predict([str(r[1]) for r in rows])
    assert [r["pred_label"] for r in got] == [p.label for p in want]
    for g, p in zip(got, want, strict=True):
        assert g["pred_probs"] == pytest.approx(p.probs, abs=1e-5)  # written to 6 decimals
        assert set(g["pred_probs"]) == set(get_taxonomy("meld").labels)

    use_as_default_model(monkeypatch, tmp_path / "no-model-here")
    code, err = _run_cli(["annotate", str(src), str(tmp_path / "lex.csv"), "--workers", "1",
                          "--no-progress"], capsys)  # fmt: skip
    assert code == 0 and "using the 'lexicon' recogniser" in err


@pytest.mark.filterwarnings("ignore:.*turns of context")  # the tiny model reads 4 turns
def test_default_model_in_dialogue_mode(
    default_model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default model reads dialogues; its own goemotions head answers --taxonomy goemotions."""
    from emoscope import Dialogue, Utterance
    from emoscope.recognizers.encoder import EncoderRecognizer
    from scale_helpers import use_as_default_model

    use_as_default_model(monkeypatch, default_model_folder)
    rows = _dialogue_rows()
    src = _write_csv(tmp_path / "in.csv", rows, ["dlg", "spk", "turn", "text", "id"])
    opts = AnnotateOptions(dialogue_col="dlg", speaker_col="spk", turn_col="turn",
                           taxonomy="goemotions", chunk_size=8)  # fmt: skip
    res = annotate(src, tmp_path / "out.jsonl", opts, workers=1, progress=False)
    assert res.recognizer == "default"
    out = _read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == [str(r[4]) for r in rows]
    go = EncoderRecognizer(default_model_folder, taxonomy="goemotions")
    d0 = sorted((r for r in rows if r[0] == "d1"), key=lambda r: int(str(r[2])))
    want = go.predict([Dialogue([Utterance(str(r[3]), str(r[1])) for r in d0])])
    got = {int(str(r["turn"])): r for r in out if r["dlg"] == "d1"}
    for r, p in zip(d0, want, strict=True):
        g = got[int(str(r[2]))]
        assert g["pred_labels"] == list(p.labels)
        assert g["pred_probs"] == pytest.approx(p.probs, abs=1e-5)  # written to 6 decimals
        assert p.vad is not None and g["pred_valence"] == pytest.approx(p.vad[0], abs=1e-5)


def test_record_splitting_agrees_with_the_csv_module() -> None:
    """Records found without parsing (for chunk offsets) are exactly csv.reader's records,
    also for hand-made files with stray quotes, embedded newlines and blank lines."""
    import random

    from emoscope.annotate.readers import _iter_records

    rng = random.Random(7)
    pieces = ["a", "b c", '"', '""', ",", "\n", "\r\n", " ", "é", '"x"', 'say "hi"', "\t"]
    for trial in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 40))) + "\n"
        for delim in (",", "\t"):
            data = text.encode()
            want = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delim) if r]
            recs = _iter_records(iter(io.BytesIO(data).readline, b""), 0, 1, delim)
            got = []
            for _s, _e, _l, rec in recs:
                got += [
                    r for r in csv.reader(io.StringIO(rec.decode(), newline=""), delimiter=delim)
                ]
            got = [r for r in got if r]
            assert got == want, (trial, delim, text)
