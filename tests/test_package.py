"""Package-level checks: public API, lint/format/type gates, README vs CI, published schema."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import emoscope
from emoscope import PREDICTION_SCHEMA, EmotionPrediction

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "docs" / "prediction.schema.json"

# The documented public API of ``import emoscope`` (change both together).
PUBLIC_API = [
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


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


# ------------------------------------------------------------------------------------------
# (a) public API and import weight
# ------------------------------------------------------------------------------------------


def test_all_is_the_documented_api() -> None:
    assert sorted(emoscope.__all__) == sorted(PUBLIC_API)
    assert len(set(emoscope.__all__)) == len(emoscope.__all__)


@pytest.mark.parametrize("name", PUBLIC_API)
def test_public_name_resolves(name: str) -> None:
    obj = getattr(emoscope, name)
    assert obj is not None
    if callable(obj) and not isinstance(obj, type):
        assert obj.__doc__, f"emoscope.{name} has no docstring"


def test_lazy_names_are_the_real_functions() -> None:
    from emoscope.datasets import load_dataset
    from emoscope.evaluate import EvalResult, evaluate

    assert EvalResult is not None
    assert emoscope.load_dataset is load_dataset
    # Importing the submodule emoscope.evaluate must not replace the function of that name.
    assert emoscope.evaluate is evaluate, (
        "emoscope.evaluate is the submodule, not the function, once emoscope.evaluate has been "
        "imported; import the function eagerly in emoscope/__init__.py (or rename the module)"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", emoscope.__version__)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        emoscope.not_a_name  # noqa: B018


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, emoscope\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('after import:', heavy)\n"
        "emoscope.evaluate, emoscope.load_dataset, emoscope.load_recognizer('lexicon')\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('after lexicon:', heavy)\n"
    )
    proc = _run([sys.executable, "-c", code], timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["after import: []", "after lexicon: []"], proc.stdout


# ------------------------------------------------------------------------------------------
# (b) ruff and mypy
# ------------------------------------------------------------------------------------------


def _tool(module: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in {sys.prefix} (pip install -e '.[dev]')")
    return [sys.executable, "-m", module]


LINT_PATHS = ["src", "tests", "benchmarks", "docs"]


def test_ruff_check() -> None:
    proc = _run([*_tool("ruff"), "check", *LINT_PATHS])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run([*_tool("ruff"), "format", "--check", *LINT_PATHS])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    # Checks the files listed in pyproject.toml ([tool.mypy] files = src/emoscope). The first run
    # on a clean checkout takes about a minute (it analyses torch/transformers); later runs use
    # .mypy_cache and take seconds.
    proc = _run([*_tool("mypy")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------
# (c) the README's test command is the one CI runs
# ------------------------------------------------------------------------------------------

CI_START = "# --- the README's test command"
CI_END = "# -----"


def _commands(lines: list[str]) -> list[str]:
    """Shell commands of ``lines``: comments, blanks and prompts dropped, ``\\`` lines joined."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        line = line.removeprefix("$ ")
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def ci_test_commands(text: str) -> list[str]:
    """The commands between the marker lines of ``.ci/run`` (CI bookkeeping dropped)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(CI_START)]
    assert len(starts) == 1, f".ci/run needs exactly one line starting with {CI_START!r}"
    ends = [i for i, line in enumerate(lines) if i > starts[0] and line.startswith(CI_END)]
    assert ends, f".ci/run has no closing marker line starting with {CI_END!r}"
    block = lines[starts[0] + 1 : ends[0]]
    return [c for c in _commands(block) if not re.fullmatch(r"status=\$\?", c)]


def readme_test_commands(text: str) -> list[str]:
    """The commands of the first fenced block under the heading containing "Run the tests".

    The block must be fenced as ```bash and come before the next heading.
    """
    lines = text.splitlines()
    headings = [
        i
        for i, line in enumerate(lines)
        if re.match(r"#{1,6}\s", line) and "run the tests" in line.lower()
    ]
    assert headings, 'README.md has no heading containing "Run the tests"'
    i = headings[0] + 1
    while i < len(lines) and not lines[i].lstrip().startswith("```"):
        assert not re.match(r"#{1,6}\s", lines[i]), (
            'no fenced code block between the "Run the tests" heading and the next heading'
        )
        i += 1
    assert i < len(lines), 'no fenced code block after the "Run the tests" heading'
    fence = lines[i].strip()
    assert fence == "```bash", f"the test command block must be fenced as ```bash, got {fence!r}"
    end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
    assert end is not None, "the ```bash block after 'Run the tests' is not closed"
    return _commands(lines[i + 1 : end])


def test_command_extraction() -> None:
    ci = (
        "set -e\n# --- the README's test command ---\n"
        "make \\\n  test\nstatus=$?\n# ------\nexit 1\n"
    )
    assert ci_test_commands(ci) == ["make test"]
    readme = "# X\n## Run the tests\n\nFrom the root:\n\n```bash\n$ make test\n```\n"
    assert readme_test_commands(readme) == ["make test"]
    with pytest.raises(AssertionError, match="fenced as ```bash"):
        readme_test_commands("## Run the tests\n```sh\nmake test\n```\n")
    with pytest.raises(AssertionError, match="no fenced code block between"):
        readme_test_commands("## Run the tests\ntext\n## Next\n```bash\nmake test\n```\n")
    with pytest.raises(AssertionError, match='no heading containing "Run the tests"'):
        readme_test_commands("# Title\n```bash\nmake test\n```\n")


def test_readme_test_command_matches_ci() -> None:
    readme = ROOT / "README.md"
    ci = ROOT / ".ci" / "run"
    assert ci.is_file(), f"{ci} is missing"
    assert readme.is_file(), f"{readme} is missing; it must document the test command"
    want = ci_test_commands(ci.read_text(encoding="utf-8"))
    assert want, ".ci/run has no command between its marker lines"
    got = readme_test_commands(readme.read_text(encoding="utf-8"))
    assert got == want, f"README.md test command {got} differs from .ci/run {want}"


# ------------------------------------------------------------------------------------------
# (d) the published prediction schema
# ------------------------------------------------------------------------------------------

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}
_KEYWORDS = {
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "oneOf",
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool))


def check_instance(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """A small JSON Schema validator for the keywords PREDICTION_SCHEMA uses."""
    unknown = set(schema) - _KEYWORDS
    assert not unknown, f"schema keywords {unknown} at {where} are not checked by this test"
    errors: list[str] = []
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not check_instance(value, s, where)]
        if len(ok) != 1:
            errors.append(f"{where}: matches {len(ok)} of the oneOf schemas")
    if "type" in schema and not _is_type(value, schema["type"]):
        return [*errors, f"{where}: expected {schema['type']}, got {type(value).__name__}"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errors += check_instance(v, props[k], f"{where}.{k}")
            elif extra is False:
                errors.append(f"{where}: unexpected property {k!r}")
            elif isinstance(extra, dict):
                errors += check_instance(v, extra, f"{where}.{k}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, v in enumerate(value):
                errors += check_instance(v, schema["items"], f"{where}[{i}]")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > {schema['maximum']}")
    return errors


def _example_predictions() -> list[EmotionPrediction]:
    from emoscope import load_recognizer

    preds = [
        EmotionPrediction({"joy": 0.6, "sadness": 0.1, "neutral": 0.3}, "meld"),
        EmotionPrediction(
            {"joy": 0.9, "love": 0.7, "neutral": 0.0},
            "goemotions",
            labels=("joy", "love"),
            vad=(1.0, -1.0, 0.25),
            rationale="because",
            cues={"explicit": ["love"]},
            multi_label=True,
        ),
        EmotionPrediction.from_scores(["anger", "fear"], [0.5, 0.5], "ekman", vad=(-0.7, 0.6, 0)),
    ]
    lexicon = load_recognizer("lexicon")
    preds += lexicon.predict(["I am so happy for you!", "This is awful, I hate it."])
    return preds


def _docs_example() -> dict[str, Any]:
    text = (ROOT / "docs" / "prediction.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "docs/prediction.md should hold one ```json example"
    example: dict[str, Any] = json.loads(blocks[0])
    return example


def test_published_schema_matches_code() -> None:
    assert SCHEMA_FILE.is_file(), f"{SCHEMA_FILE} is missing; run python docs/make_schema.py"
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == PREDICTION_SCHEMA, (
        "docs/prediction.schema.json differs from emoscope.PREDICTION_SCHEMA; "
        "run python docs/make_schema.py"
    )


def test_predictions_validate_against_schema() -> None:
    for pred in [*_example_predictions(), EmotionPrediction.from_dict(_docs_example())]:
        d = json.loads(json.dumps(pred.to_dict()))
        assert check_instance(d, PREDICTION_SCHEMA) == [], d


def test_docs_example_round_trips() -> None:
    example = _docs_example()
    assert check_instance(example, PREDICTION_SCHEMA) == []
    pred = EmotionPrediction.from_dict(example)
    assert pred.to_dict() == example


BAD_PREDICTIONS: list[tuple[str, dict[str, Any]]] = [
    ("extra property", {"extra": 1}),
    ("probability above 1", {"probs": {"joy": 1.5}}),
    ("short vad", {"vad": [0.1, 0.2]}),
    ("vad out of range", {"vad": [0.1, 0.2, 1.5]}),
    ("label not a string", {"label": 3}),
    ("confidence a string", {"confidence": "high"}),
]


@pytest.mark.parametrize(("why", "change"), BAD_PREDICTIONS)
def test_schema_rejects_bad_predictions(why: str, change: dict[str, Any]) -> None:
    good = EmotionPrediction({"joy": 0.8, "neutral": 0.2}, "meld", vad=(0.5, 0.1, 0.0)).to_dict()
    assert check_instance(good, PREDICTION_SCHEMA) == []
    assert check_instance({**good, **change}, PREDICTION_SCHEMA), why
    missing = dict(good)
    del missing["probs"]
    assert check_instance(missing, PREDICTION_SCHEMA) == ["$: missing 'probs'"]


def test_schema_with_jsonschema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    validator_cls = jsonschema.Draft202012Validator
    validator_cls.check_schema(PREDICTION_SCHEMA)
    validator = validator_cls(PREDICTION_SCHEMA)
    for pred in _example_predictions():
        validator.validate(json.loads(json.dumps(pred.to_dict())))
    validator.validate(_docs_example())
    good = EmotionPrediction({"joy": 0.8, "neutral": 0.2}, "meld").to_dict()
    for why, change in BAD_PREDICTIONS:
        assert not validator.is_valid({**good, **change}), why


def test_make_schema_script(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_schema", ROOT / "docs" / "make_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
    out = tmp_path / "schema.json"
    assert module.main(["--check", "--out", str(out)]) == 1  # missing
    assert module.main(["--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8")) == PREDICTION_SCHEMA
    assert module.main(["--check", "--out", str(out)]) == 0
    out.write_text('{"title": "stale"}', encoding="utf-8")
    assert module.main(["--check", "--out", str(out)]) == 1
