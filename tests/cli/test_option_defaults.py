"""Command options take their defaults from the library's config classes (one source)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from emoscope.cli.llm import _sft_config, llm_train
from emoscope.cli.serve import serve
from emoscope.llm.sft import SFTConfig
from emoscope.serve import ServeConfig


def _defaults(command: object) -> dict[str, object]:
    params = inspect.signature(command).parameters  # type: ignore[arg-type]
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def test_serve_options_default_to_serve_config() -> None:
    options = _defaults(serve)
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    # max_text_chars defaults to the limit in force ($EMOSCOPE_MAX_TEXT_CHARS) at start-up
    shared = sorted((fields & set(options)) - {"max_text_chars"})
    assert len(shared) >= 12, shared
    config = ServeConfig()
    assert {k: options[k] for k in shared} == {k: getattr(config, k) for k in shared}


def test_llm_train_options_are_sft_config_fields_with_its_defaults(tmp_path: Path) -> None:
    params = inspect.signature(llm_train).parameters
    renamed = {"model": "base_model", "buckets": "n_buckets"}
    names = [renamed.get(k, k) for k in params if k not in ("ctx", "out")]
    fields = {f.name: f for f in dataclasses.fields(SFTConfig)}
    assert set(names) <= set(fields), set(names) - set(fields)
    assert len(names) >= 30
    default = SFTConfig()
    for name, value in _defaults(llm_train).items():
        assert value == getattr(default, renamed.get(name, name)), name
    given = {k: p.default for k, p in params.items() if k != "ctx"}
    given.update(model="base-lm", out=tmp_path, data_root=tmp_path, buckets=3, epochs=9)
    config = _sft_config(given)
    want = dataclasses.replace(
        default, base_model="base-lm", data_root=str(tmp_path), n_buckets=3, epochs=9
    )
    assert config == want
