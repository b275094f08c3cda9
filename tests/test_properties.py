"""Property-based checks (hypothesis): arbitrary input never gives a traceback or a 500.

- dataset readers: any bytes in a file → a dataset or a :class:`DataError`, nothing else;
- the CLI input path: any stdin bytes or argument strings → exit 0 or 2, never a traceback;
- the HTTP endpoints: any JSON (or any bytes) as a body → an answer below 500.

Examples per property are kept small (CI time); ``deadline=None`` because the first examples
pay for imports and loading the lexicon.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoscope import cli
from emoscope.datasets import (
    load_dataset,
    load_emobench,
    load_eqbench,
    read_dialogue_file,
    read_labelled_file,
    read_texts,
)
from emoscope.errors import DataError

FIXTURE_ROOT = Path(__file__).resolve().parent / "fixtures" / "datasets" / "root"
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Bytes that look like the formats: delimiters, quotes, line ends, braces, invalid UTF-8.
_PIECES = [b",", b"\t", b'"', b"\n", b"\r", b"\r\n", b"{", b"}", b"[", b"]", b":", b'"text"',
           b'"label"', b"text,label\n", b"id,text\n", b"joy", b"neutral", b"\xe9", b"\xef\xbb\xbf",
           b"\xff", b"\x00", b"1", b"-", b"null", b"caf\xc3\xa9", b" "]  # fmt: skip
file_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(_PIECES) | st.binary(max_size=4), max_size=60).map(b"".join),
)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("props")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl"])
@SETTINGS
@given(data=file_bytes)
def test_user_file_readers_give_a_dataset_or_a_data_error(
    suffix: str, data: bytes, work: Path
) -> None:
    path = work / f"in{suffix}"
    path.write_bytes(data)
    for read in (read_texts, read_dialogue_file, lambda p: read_labelled_file(p, "meld")):
        with _quiet(), contextlib.suppress(DataError):
            read(path)


_BENCHMARK_FILES = {
    "meld": "meld/test_sent_emo.csv",
    "emorynlp": "emorynlp/emorynlp_test_final.csv",
    "goemotions": "goemotions/test.tsv",
    "emobank": "emobank/emobank.csv",
    "emobench": "emobench/EA.jsonl",
    "eqbench": "eqbench/eq_bench_v2_questions_171.json",
}


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(FIXTURE_ROOT, root, dirs_exist_ok=True)
    return root


@pytest.mark.parametrize("name", sorted(_BENCHMARK_FILES))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=file_bytes)
def test_benchmark_readers_give_a_dataset_or_a_data_error(
    name: str, data: bytes, bench_root: Path
) -> None:
    original = (FIXTURE_ROOT / _BENCHMARK_FILES[name]).read_bytes()
    target = bench_root / _BENCHMARK_FILES[name]
    target.write_bytes(data)
    try:
        with _quiet(), contextlib.suppress(DataError):
            if name == "emobench":
                load_emobench(root=bench_root)
            elif name == "eqbench":
                load_eqbench(root=bench_root)
            else:
                load_dataset(name, "test", root=bench_root)
    finally:
        target.write_bytes(original)


def _cli(args: list[str], stdin: bytes | None = None) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _quiet():
            try:
                cli.main(args)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin = old
    return code, err.getvalue()


CLI_SETTINGS = settings(max_examples=15, deadline=None)


@CLI_SETTINGS
@given(data=file_bytes)
def test_cli_stdin_is_exit_0_or_2_without_traceback(data: bytes) -> None:
    code, err = _cli(["analyze", "-r", "lexicon", "--json"], stdin=data)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err


@CLI_SETTINGS
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_cli_arguments_are_exit_0_or_2_without_traceback(texts: list[str]) -> None:
    texts = [
        t for t in texts if "\x00" not in t and not t.startswith("-")
    ]  # argv cannot hold these
    if not texts:
        return
    code, err = _cli(["analyze", "-r", "lexicon", "--json", "--", *texts])
    assert code in (0, 2), err
    assert "Traceback" not in err


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(["text", "texts", "taxonomy", "utterances", "speaker", "id", "x"])
bodies = st.one_of(
    json_values,
    st.dictionaries(_keys, json_values, max_size=3),
    st.fixed_dictionaries(
        {"utterances": st.lists(st.dictionaries(_keys, json_values, max_size=3), max_size=3)}
    ),
    st.fixed_dictionaries({"texts": st.lists(st.text(max_size=30), max_size=3)}),
)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from emoscope.serve import ServeConfig, create_app

    with TestClient(
        create_app(ServeConfig(recognizer="lexicon")), raise_server_exceptions=False
    ) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/dialogue"])
@SETTINGS
@given(body=bodies)
def test_http_json_bodies_never_give_a_500(path: str, body: Any, client: Any) -> None:
    raw = json.dumps(body).encode()  # lone surrogates are escaped, as a client sends them
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, (body, r.text)
    assert r.status_code in (200, 422), (body, r.status_code, r.text)
    r.json()


@pytest.mark.parametrize("path", ["/v1/analyze", "/v1/dialogue"])
@SETTINGS
@given(raw=file_bytes, ctype=st.sampled_from(["application/json", "text/plain", None]))
def test_http_raw_bodies_never_give_a_500(
    path: str, raw: bytes, ctype: str | None, client: Any
) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = client.post(path, content=raw, headers=headers)
    assert r.status_code < 500, (raw, r.text)
    assert r.status_code in (200, 415, 422), (raw, ctype, r.status_code, r.text)
