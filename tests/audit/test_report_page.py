"""The HTML report of a real (tiny) audit in headless Chromium: it opens from disk with nothing
fetched from anywhere, and every figure decodes and is drawn. A screenshot is written to
``tests/artifacts/audit-report.png`` (git-ignored). Skips without Chromium or Playwright, as
the web-page test does (set-up: ``tests/browser_helpers.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import TINY

from browser_helpers import ARTIFACTS, chromium_context, require_browser
from emoscope.audit import AuditConfig, open_target, run_audit

sync_api = require_browser()


@pytest.fixture(scope="module")
def report(audit_llama: Path, audit_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-page") / "out"
    config = AuditConfig(
        sizes=TINY, data_root=str(audit_root), judge="lexicon",
        sections=("recognition", "stimuli", "probes", "steering"),
    )  # fmt: skip
    cache = tmp_path_factory.mktemp("audit-page-cache")
    run_audit(open_target(str(audit_llama)), config, out, progress=False, llm_cache=cache)
    return out / "report.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_context(sync_api, tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_the_report_opens_offline_and_its_figures_render(browser: Any, report: Path) -> None:
    pg = browser.new_page()
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(report.as_uri())
    pg.wait_for_load_state("load")
    assert pg.title().startswith("Emotion audit of")
    sizes = pg.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight, e.alt])"
    )
    alts = {s[3] for s in sizes}
    assert {"reliability.png", "stimuli.png", "probe_layers.png", "steering.png"} <= alts
    assert all(done and w > 100 and h > 100 for done, w, h, _ in sizes), sizes
    # Drawn on the page, not just decoded: every figure has a visible box.
    boxes = [img.bounding_box() for img in pg.query_selector_all("img")]
    assert all(b is not None and b["width"] > 100 and b["height"] > 50 for b in boxes)
    assert len(pg.query_selector_all("table")) >= 4
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit-report.png"
    pg.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert errors == []
    # The page itself and its data: URIs only; nothing from the network.
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    pg.close()
