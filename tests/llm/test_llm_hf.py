"""The Hugging Face backend end to end on a tiny random Llama loaded through from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.llm.base import ResponseCache
from emoscope.llm.hf import HFBackend, render_chat, resolve_model_and_adapter
from emoscope.llm.parsing import parse_answer
from emoscope.recognizers.llm import LLMRecognizer

CONVS = [
    [
        {"role": "system", "content": "You are an expert at recognising emotions."},
        {"role": "user", "content": 'Which emotion label fits Ross in "I swear!"?'},
    ],
    [{"role": "user", "content": "joy or anger?"}],
    [{"role": "user", "content": "neutral " * 30}],
]


@pytest.fixture(scope="module")
def hf(tiny_llama: Path) -> HFBackend:
    return HFBackend(str(tiny_llama), device="cpu", batch_size=3)


def test_generate_greedy_with_token_counts(hf: HFBackend) -> None:
    out = hf.generate(CONVS, max_new_tokens=6)
    assert len(out) == 3
    for conv, gen in zip(CONVS, out, strict=True):
        prompt = hf.render(conv)
        n_prompt = len(hf.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert gen.prompt_tokens == n_prompt
        assert 1 <= gen.completion_tokens <= 6
        assert isinstance(gen.text, str) and not gen.cached
    # Greedy decoding is deterministic.
    assert [g.text for g in hf.generate(CONVS, max_new_tokens=6)] == [g.text for g in out]


def test_left_padded_batches_match_single_prompts(tiny_llama: Path) -> None:
    batched = HFBackend(str(tiny_llama), device="cpu", batch_size=3).generate(
        CONVS, max_new_tokens=8
    )
    single = HFBackend(str(tiny_llama), device="cpu", batch_size=1).generate(
        CONVS, max_new_tokens=8
    )
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in single]


def test_chat_template_is_used(hf: HFBackend) -> None:
    text = hf.render(CONVS[0])
    assert text.startswith("<|system|>You are an expert")
    assert text.endswith('<|user|>Which emotion label fits Ross in "I swear!"?<|end|><|assistant|>')


def test_response_cache(tiny_llama: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    b = HFBackend(str(tiny_llama), device="cpu", cache=db)
    first = b.generate(CONVS[:2], max_new_tokens=4)
    again = HFBackend(str(tiny_llama), device="cpu", cache=db).generate(CONVS[:2], max_new_tokens=4)
    assert [g.text for g in again] == [g.text for g in first]
    assert all(g.cached for g in again) and not any(g.cached for g in first)
    assert [g.prompt_tokens for g in again] == [g.prompt_tokens for g in first]
    assert len(ResponseCache(db)) == 2


def test_templates_without_system_role_or_without_template(tiny_llama: Path) -> None:
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(tiny_llama)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    merged = render_chat(tok, CONVS[0])
    assert merged.startswith("[user]You are an expert at recognising emotions.\n\nWhich emotion")
    tok.chat_template = None
    plain = render_chat(tok, CONVS[0])
    assert plain == (
        "System: You are an expert at recognising emotions.\n\n"
        'User: Which emotion label fits Ross in "I swear!"?\n\nAssistant:'
    )


def test_bad_model_paths_and_options(tmp_path: Path, tiny_llama: Path) -> None:
    with pytest.raises(EmoscopeError, match=r"cannot load model .*no such folder"):
        HFBackend(str(tmp_path / "nothing-here"), device="cpu")
    with pytest.raises(EmoscopeError, match="unknown dtype 'float7'"):
        HFBackend(str(tiny_llama), device="cpu", dtype="float7")
    with pytest.raises(EmoscopeError, match="batch_size"):
        HFBackend(str(tiny_llama), batch_size=0)
    bad = tmp_path / "adapter"
    bad.mkdir()
    (bad / "adapter_config.json").write_text('{"base_model_name_or_path": ""}')
    with pytest.raises(EmoscopeError, match="is empty"):
        resolve_model_and_adapter(str(bad))
    assert resolve_model_and_adapter(str(tiny_llama)) == (str(tiny_llama), None)


def test_4bit_needs_bitsandbytes_and_cuda(tiny_llama: Path) -> None:
    with pytest.raises(EmoscopeError, match=r"bitsandbytes|CUDA"):
        HFBackend(str(tiny_llama), device="cpu", load_in_4bit=True)


def test_recognizer_prompt_generate_parse_end_to_end(tiny_llama: Path, tmp_path: Path) -> None:
    dialogue = Dialogue(
        [Utterance("I got the job!", "Rachel"), Utterance("No way! Congratulations!", "Monica")],
        id="0",
    )
    rec = LLMRecognizer(
        backend="hf",
        model=str(tiny_llama),
        prompt="prc",
        retrieve=0,
        taxonomy="meld",
        cache_dir=tmp_path / "cache",
        device="cpu",
        batch_size=2,
        cue_max_new_tokens=12,
    )
    preds = rec.predict([dialogue, "what a day"])
    assert len(preds) == 3
    for p in preds:
        assert p.taxonomy == "meld"
        assert abs(sum(p.probs.values()) - 1) < 1e-9
        answer = p.cues["answer"]
        parsed = parse_answer(answer, "meld")
        assert p.cues["parse_failed"] is parsed.parse_failed
        assert p.label == (parsed.label or "neutral")
        assert p.cues["prompt_tokens"] > 50
        assert 1 <= p.cues["completion_tokens"] <= rec.max_new_tokens == 48  # the default cap
        # The random model's stage-1 answers are not JSON: marked as failed, never a crash.
        assert "descriptions" in p.cues["stage1_failed"]
        assert p.cues["stage1_prompt_tokens"] > 0
    # One stage-1 cue file per dialogue (the standalone text counts as one).
    assert len(list((tmp_path / "cache" / "cues").glob("*.json"))) == 2
    again = LLMRecognizer(
        backend="hf",
        model=str(tiny_llama),
        prompt="prc",
        retrieve=0,
        cache_dir=tmp_path / "cache",
        device="cpu",
        cue_max_new_tokens=12,
    ).predict([dialogue, "what a day"])
    assert [p.cues["answer"] for p in again] == [p.cues["answer"] for p in preds]
    assert all(p.cues["cached"] for p in again)
