"""Fixtures of the service tests: a live server with the lexicon recogniser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scale_helpers import running_server


@pytest.fixture(scope="module")
def lexicon_server() -> Iterator[str]:
    """A live server with the lexicon recogniser."""
    from emoscope.serve import ServeConfig, create_app

    with running_server(create_app(ServeConfig(recognizer="lexicon"))) as url:
        yield url
