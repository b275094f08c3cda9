"""The web page in headless Chromium (Debian ``chromium``) driven by Playwright.

Set-up: see ``tests/browser_helpers.py`` (Debian's ``chromium`` and ``pip install
playwright``; the test skips without them). A screenshot of the analysed
sample is written to ``tests/artifacts/serve-page.png`` (git-ignored).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_helpers import ARTIFACTS, chromium_context, require_browser

sync_api = require_browser()

SAMPLE_TURNS = 8


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(sync_api, tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: Any, lexicon_server: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page on the live server, with the URLs it requested and its console errors."""
    pg = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(lexicon_server + "/")
    pg.wait_for_selector("body[data-state=ready]", timeout=15_000)
    yield pg, requests, errors
    pg.close()


def test_sample_dialogue_is_analysed_and_drawn(
    page: tuple[Any, list[str], list[str]], lexicon_server: str
) -> None:
    pg, requests, errors = page
    assert pg.title().startswith("emoscope")
    assert "lexicon" in pg.inner_text("#model-info")
    pg.click("#sample-button")
    text = pg.input_value("#dialogue-input")
    assert len(text.splitlines()) == SAMPLE_TURNS
    # Paste the sample back in as a user would (fill = replace the textarea's content).
    pg.fill("#dialogue-input", "")
    pg.fill("#dialogue-input", text)
    pg.click("#analyse-button")
    pg.wait_for_selector("body[data-state=done]", timeout=15_000)

    utterances = pg.query_selector_all("#utterances li.utterance")
    assert len(utterances) == SAMPLE_TURNS
    labels = [u.get_attribute("data-label") for u in utterances]
    go = pg.evaluate(
        "fetch('/v1/models').then(r => r.json()).then(m => "
        "m.taxonomies.find(t => t.name === m.default_taxonomy).labels.map(l => l.name))"
    )
    assert all(lab in go for lab in labels)
    speakers = {u.get_attribute("data-speaker") for u in utterances}
    assert speakers == {"Maya", "Sam"}
    # Each utterance is coloured: its border colour is set from its label.
    colours = pg.eval_on_selector_all(
        "#utterances li.utterance", "els => els.map(e => getComputedStyle(e).borderLeftColor)"
    )
    assert all(c.startswith("rgb") for c in colours)
    by_label: dict[str, set[str]] = {}
    for lab, col in zip(labels, colours, strict=True):
        by_label.setdefault(str(lab), set()).add(col)
    assert all(len(cols) == 1 for cols in by_label.values())  # one colour per label
    if len(by_label) > 1:
        assert len({next(iter(c)) for c in by_label.values()}) > 1
    first = pg.inner_text("#utterances li.utterance:first-child")
    assert "Maya" in first and "I got the job!" in first

    # Timeline: one lane per speaker, one bar per utterance, coloured like the utterance.
    bars = pg.query_selector_all("svg#timeline rect.turn")
    assert len(bars) == SAMPLE_TURNS
    assert [b.get_attribute("data-label") for b in bars[:1]] == labels[:1]
    assert {b.get_attribute("data-speaker") for b in bars} == {"Maya", "Sam"}
    assert len(pg.query_selector_all("svg#timeline polyline.valence")) == 2
    box = pg.query_selector("svg#timeline").bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 80
    # Valence-arousal plot: a point per utterance (the lexicon predicts VAD).
    assert len(pg.query_selector_all("svg#va-plot circle.point")) == SAMPLE_TURNS
    assert pg.query_selector_all("#legend .legend-item")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve-page.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")

    assert errors == []
    # Nothing was fetched from anywhere but this server (no CDN).
    assert requests and all(u.startswith(lexicon_server) for u in requests), requests


def test_json_upload_and_taxonomy_choice(
    page: tuple[Any, list[str], list[str]], tmp_path: Path
) -> None:
    pg, _, errors = page
    dialogue = {
        "id": "upload",
        "utterances": [
            {"speaker": "Ann", "text": "I am so angry, this is outrageous!"},
            {"speaker": "Bo", "text": "Thank you so much, I love it."},
            {"speaker": "Ann", "text": "That is disgusting and gross."},
        ],
    }
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(dialogue), encoding="utf-8")
    pg.set_input_files("#file-input", str(path))
    # (expect polls without eval, which the page's Content-Security-Policy forbids)
    sync_api.expect(pg.locator("#status")).to_have_text("Loaded talk.json.")
    assert "outrageous" in pg.input_value("#dialogue-input")
    pg.select_option("#taxonomy-select", "ekman")
    pg.click("#analyse-button")
    pg.wait_for_selector("body[data-state=done]", timeout=15_000)
    labels = pg.eval_on_selector_all(
        "#utterances li.utterance", "els => els.map(e => e.dataset.label)"
    )
    assert len(labels) == 3
    assert set(labels) <= {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}
    assert "ekman" in pg.inner_text("#summary")
    assert len(pg.query_selector_all("svg#timeline rect.turn")) == 3
    assert errors == []


def test_bad_input_shows_an_error(page: tuple[Any, list[str], list[str]]) -> None:
    pg, _, _ = page
    pg.fill("#dialogue-input", '{"utterances": [ broken')
    pg.click("#analyse-button")
    status = pg.locator("#status")
    assert "does not parse" in status.inner_text()
    assert "error" in (status.get_attribute("class") or "")
    # A server-side limit error is shown with its message.
    pg.fill("#dialogue-input", "A: " + "x" * 2500)
    pg.click("#analyse-button")
    pg.wait_for_selector("body[data-state=error]", timeout=15_000)
    assert "max_text_chars" in status.inner_text()


def test_explained_words_are_highlighted(page: tuple[Any, list[str], list[str]]) -> None:
    pg, requests, errors = page
    pg.fill("#dialogue-input", "Maya: I am so happy today\nSam: This is awful and sad")
    pg.check("#explain-check")
    pg.click("#analyse-button")
    pg.wait_for_selector("body[data-state=done]", timeout=15_000)
    assert any("/v1/dialogue?explain=true" in u for u in requests)
    first = pg.query_selector_all("#utterances li.utterance:first-child span.cue")
    assert [c.inner_text() for c in first] == ["I", "am", "so", "happy", "today"]
    weights = {c.inner_text(): float(c.get_attribute("data-weight")) for c in first}
    assert max(weights, key=weights.__getitem__) == "happy"  # the lexicon's joy word
    happy = next(c for c in first if c.inner_text() == "happy")
    assert "cue-for" in (happy.get_attribute("class") or "")  # supports the label: highlighted
    # The text reads as before: spans and the gaps between them rebuild it.
    assert pg.inner_text("#utterances li.utterance:first-child p.text") == "I am so happy today"
    assert errors == []
