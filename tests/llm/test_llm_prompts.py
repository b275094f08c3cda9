"""Prompt assembly: golden files of every variant, section order, windows, template errors.

Regenerate the golden files after an intended template change with
``EMOSCOPE_UPDATE_GOLDEN=1 pytest tests/llm/test_llm_prompts.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emoscope.dialogue import Dialogue, Utterance
from emoscope.errors import EmoscopeError
from emoscope.llm.prompting import (
    TEMPLATES,
    VARIANTS,
    Cues,
    Demonstration,
    PromptBuilder,
    load_template,
    template_for,
)
from emoscope.recognizers.base import Target

GOLDEN = Path(__file__).parent / "golden"

DIALOGUE = Dialogue(
    [
        Utterance("Hey, has anybody seen my keys?", "Ross"),
        Utterance("They're on the counter.", "Monica"),
        Utterance("Not there. I checked twice.", "Ross"),
        Utterance("Did you check your pocket?", "Rachel"),
        Utterance("Oh. Oh no. These are Joey's keys.", "Ross"),
        Utterance("Why do you have my keys?!", "Joey"),
        Utterance("I have no idea. I swear!", "Ross"),
        Utterance("Unbelievable.", "Joey"),
    ],
    id="d7",
)
CUES = Cues(
    explicit="He protests loudly and swears he is innocent, speaking fast to defend himself.",
    implicit="Underneath he is embarrassed and worried that his friends will stop trusting him.",
    profile="Ross is anxious and talkative, quick to explain himself when under suspicion.",
)
DEMOS = [
    Demonstration("I swear I didn't take it!", "fear", "meld-train", 0.41),
    Demonstration("I have no idea what happened.", "neutral", "meld-train", 0.5649),
    Demonstration("Why would I do that?", "anger", "emorynlp-train", 0.7),
]


def render(messages: list[dict[str, str]]) -> str:
    return "".join(f"=== {m['role']} ===\n{m['content']}\n" for m in messages)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("EMOSCOPE_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with EMOSCOPE_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"prompt differs from {path}"


def target(index: int = 6, dialogue: Dialogue = DIALOGUE) -> Target:
    return Target(dialogue[index], dialogue, index)


@pytest.mark.parametrize("variant", VARIANTS)
def test_meld_final_prompt_golden(variant: str) -> None:
    b = PromptBuilder(template_for("meld"), "meld", variant)
    demos = DEMOS if variant != "zero-shot" else []
    check_golden(f"meld_{variant}", render(b.final_messages(target(), CUES, demos)))


def test_meld_prc_with_confidence_and_rationale_golden() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "prc", confidence=True, rationale=True)
    check_golden("meld_prc_structured", render(b.final_messages(target(), CUES, DEMOS)))


def test_stage1_prompts_golden() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "prc")
    check_golden("meld_stage1_descriptions", render(b.descriptions_messages(target())))
    check_golden("meld_stage1_profile", render(b.profile_messages(DIALOGUE, "Ross")))


def test_emorynlp_prc_golden() -> None:
    b = PromptBuilder(template_for("emorynlp"), "emorynlp", "prc")
    demos = [Demonstration("I swear I didn't take it!", "scared", "emorynlp-train", 0.41)]
    check_golden("emorynlp_prc", render(b.final_messages(target(), CUES, demos)))


def test_generic_multi_label_standalone_text_golden() -> None:
    b = PromptBuilder(template_for("goemotions"), "goemotions", "prc", confidence=True)
    text = Target(Utterance("Thank you so much, this made my day!"))
    cues = Cues(explicit="Warm, effusive thanks.", implicit="Relief and real gratitude.")
    demos = [Demonstration("thanks a lot, you're the best", "gratitude", "goemotions-train", 0.3)]
    check_golden("generic_goemotions_text_prc", render(b.final_messages(text, cues, demos)))


def test_prc_sections_follow_the_paper_order() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "prc")
    system, user = (m["content"] for m in b.final_messages(target(), CUES, DEMOS))
    markers = [
        "### You are an expert",  # role instruction
        "*Explicit emotion* is",  # definitions
        "### Given the following conversation",  # context window
        "### Profile of the speaker Ross",  # speaker profile
        "- Explicit emotion: He protests",  # explicit description
        "- Implicit emotion: Underneath",  # implicit description
        '1. "I swear I didn\'t take it!" → fear (from meld-train, distance: 0.41)',  # examples
        "### Available emotion labels: neutral, joy, surprise, anger, sadness, disgust, fear",
    ]
    positions = [system.index(m) for m in markers]
    assert positions == sorted(positions)
    assert user.startswith("Based on the conversation above, the speaker's profile")
    assert '"I have no idea. I swear!"' in user
    assert user.endswith("Answer with exactly one label from the list and nothing else.")


def test_context_window_and_future_turns() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "zero-shot", window=5)
    lines = b.context_lines(target(6))
    assert lines[0] == "Monica: They're on the counter." and len(lines) == 6
    assert lines[-1] == "Ross: I have no idea. I swear!"
    b2 = PromptBuilder(template_for("meld"), "meld", "zero-shot", window=1, future=5)
    assert b2.context_lines(target(6)) == [
        "Joey: Why do you have my keys?!",
        "Ross: I have no idea. I swear!",
        "Joey: Unbelievable.",
    ]
    assert b.context_lines(target(0)) == ["Ross: Hey, has anybody seen my keys?"]
    assert b.context_lines(Target(Utterance("alone"))) == ["Speaker: alone"]


def test_stage1_cue_window_ends_with_the_target() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "prc", cue_window=5)
    (msg,) = b.descriptions_messages(target(6))
    convo = msg["content"].split("### Conversation ###\n")[1].split("\n### Focus")[0]
    assert convo.splitlines() == [
        "Ross: Not there. I checked twice.",
        "Rachel: Did you check your pocket?",
        "Ross: Oh. Oh no. These are Joey's keys.",
        "Joey: Why do you have my keys?!",
        "Ross: I have no idea. I swear!",
    ]
    assert "'joy', 'surprise', 'anger', 'sadness', 'disgust', 'fear'" in msg["content"]
    assert "'neutral'" not in msg["content"]


def test_missing_cues_and_demos_are_left_out_or_marked() -> None:
    b = PromptBuilder(template_for("meld"), "meld", "prc")
    anon = Dialogue([Utterance("hi"), Utterance("hello")])
    system = b.final_messages(target(1, anon), Cues(), [])[0]["content"]
    assert "### Profile" not in system  # no speaker, no profile
    assert "- Explicit emotion: (not available)" in system
    assert "Similar utterances" not in system
    assert "Speaker: hello" in system


def test_every_builtin_template_loads_and_renders_every_variant() -> None:
    for name in TEMPLATES:
        tmpl = load_template(name)
        assert tmpl.name == name
        for variant in VARIANTS:
            tax = "goemotions" if name == "generic" else name
            msgs = PromptBuilder(tmpl, tax, variant).final_messages(target(), CUES, DEMOS)
            assert "${" not in msgs[0]["content"] + msgs[1]["content"]


def test_user_template_file(tmp_path: Path) -> None:
    text = load_template("meld").source
    assert text == "meld.toml"
    from importlib import resources

    raw = resources.files("emoscope").joinpath("data/prompts/meld.toml").read_text("utf-8")
    custom = tmp_path / "mine.toml"
    custom.write_text(
        raw.replace('name = "meld"', 'name = "mine"').replace(
            "### Available emotion labels:", "### Pick one of:"
        ),
        encoding="utf-8",
    )
    tmpl = load_template(custom)
    assert tmpl.name == "mine"
    system = PromptBuilder(tmpl, "meld", "zero-shot").final_messages(target())[0]["content"]
    assert "### Pick one of: neutral" in system


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("[questions]", "[question]"), r"missing the \[questions\] table"),
        (lambda s: s.replace('prc = ["role",', 'prc = ["rolez",'), "unknown sections"),
        (lambda s: s.replace("${labels}", "${label_list}"), r"placeholder \$\{label_list\}"),
        (lambda s: s.replace("[meta]", "[meta"), "not valid TOML"),
        (lambda s: s.replace("single = ", "singular = "), r"\[answers\] lacks single"),
    ],
)
def test_broken_templates_give_clear_errors(tmp_path: Path, edit: object, message: str) -> None:
    from importlib import resources

    raw = resources.files("emoscope").joinpath("data/prompts/meld.toml").read_text("utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(raw), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(EmoscopeError, match=message):
        tmpl = load_template(bad)
        PromptBuilder(tmpl, "meld", "prc").final_messages(target(), CUES, DEMOS)


def test_unknown_template_variant_and_windows() -> None:
    with pytest.raises(EmoscopeError, match="unknown prompt template 'nope'"):
        load_template("nope")
    with pytest.raises(EmoscopeError, match="no such prompt template file"):
        load_template("missing/file.toml")
    with pytest.raises(EmoscopeError, match="unknown prompt variant 'cot'"):
        PromptBuilder(template_for("meld"), "meld", "cot")
    with pytest.raises(EmoscopeError, match="cue_window"):
        PromptBuilder(template_for("meld"), "meld", "prc", cue_window=0)
    assert template_for("plutchik").name == "generic"
    assert template_for("EmoryNLP").name == "emorynlp"
