"""Tests of the SEV recipe, dataset directions, batched per-row steering, degeneration-first
judging and ``emoscope steer --directions-from`` (tiny random Llama built from a config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emoscope.datasets.base import Dataset, Example  # noqa: E402
from emoscope.errors import EmoscopeError  # noqa: E402
from emoscope.recognizers import load_recognizer  # noqa: E402
from emoscope.steer import (  # noqa: E402
    EmotionDirections,
    SteeringSpec,
    build_sev_directions,
    direction_cosines,
    directions_from_dataset,
    evaluate_steering,
    generate,
    judge_replies,
    read_sev,
    sev_prompts,
    steering,
)
from inside_helpers import assert_one_line_error, run_emoscope  # noqa: E402

SEV_LINES = [
    {
        "theme": "t",
        "scenario": "i was here today",
        "event": {"positive": "it was great", "neutral": "it was okay", "negative": "i lost"},
        "skeleton_id": "t_00",
    },
    {
        "theme": "t",
        "scenario": "we feel the situation",
        "event": {"positive": "we love it", "neutral": "that is it", "negative": "we cry"},
        "skeleton_id": "t_01",
    },
]


def _sev_file(folder: Path) -> Path:
    path = folder / "sev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in SEV_LINES), "utf-8")
    return path


def test_read_sev_and_prompts(tmp_path: Path) -> None:
    recs = read_sev(_sev_file(tmp_path))
    assert [r["skeleton_id"] for r in recs] == ["t_00", "t_01"]
    convs, labels, groups = sev_prompts(recs)
    assert len(convs) == 2 * 3 * 6
    assert labels[:6] == ["anger", "sadness", "joy", "fear", "surprise", "disgust"]
    assert groups[0] == (0, "positive") and groups[-1] == (1, "negative")
    assert convs[2][0] == {
        "role": "system",
        "content": "Always reply in happiness. Keep the reply to at most two sentences.",
    }
    assert convs[6][1]["content"] == "i was here today. it was okay"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(SEV_LINES[0]) + "\n" + '{"scenario": "x", "event": {}}\n', "utf-8")
    with pytest.raises(EmoscopeError, match=r"bad.jsonl, line 2: expected a JSON object"):
        read_sev(bad)
    bad.write_text("{not json\n", "utf-8")
    with pytest.raises(EmoscopeError, match="line 1: invalid JSON"):
        read_sev(bad)
    with pytest.raises(EmoscopeError, match="no such SEV file"):
        read_sev(tmp_path / "missing.jsonl")


def test_sev_directions_centre_within_scenario_and_valence(llama: Any, tmp_path: Path) -> None:
    recs = read_sev(_sev_file(tmp_path))
    dirs = build_sev_directions(llama, recs, layers="2-3")
    assert dirs.emotions == ("anger", "sadness", "joy", "fear", "surprise", "disgust")
    assert dirs.layers == (2, 3) and dirs.meta["source"] == "sev"
    assert dirs.meta["grouped_by"] == "scenario, valence"
    np.testing.assert_allclose(np.linalg.norm(dirs.vectors, axis=-1), 1.0, atol=1e-5)
    # The only difference between the prompts of a group is the emotion word of the system
    # prompt, so the directions are not the scenario contrast: they stay put when the
    # scenarios are swapped.
    swapped = build_sev_directions(llama, recs[::-1], layers="2-3")
    np.testing.assert_allclose(swapped.vectors, dirs.vectors, atol=1e-4)
    cos = direction_cosines(dirs, swapped)
    assert all(v == pytest.approx(1.0, abs=1e-4) for d in cos.values() for v in d.values())


def _dataset(n_joy: int, n_fear: int, n_sad: int) -> Dataset:
    ex = (
        [Example(f"i am so happy {i}", ("joy",)) for i in range(n_joy)]
        + [Example(f"i am scared {i}", ("fear",)) for i in range(n_fear)]
        + [Example(f"i am sad {i}", ("sadness",)) for i in range(n_sad)]
        + [Example("happy and sad", ("joy", "sadness"))]
    )
    return Dataset("mine", "train", ex)


def test_directions_from_dataset_keeps_rare_classes(llama: Any) -> None:
    ds = _dataset(40, 2, 10)
    dirs = directions_from_dataset(llama, ds, max_examples=12, layers="1-2")
    assert dirs.emotions == ("fear", "joy", "sadness")
    counts = dirs.meta["label_counts"]
    assert counts == {"fear": 2, "joy": 5, "sadness": 5}  # classes take turns, fear kept
    only = directions_from_dataset(llama, ds, emotions=["joy", "fear"], layers="1")
    assert only.emotions == ("joy", "fear") and only.meta["label_counts"] == {"fear": 2, "joy": 40}
    with pytest.raises(EmoscopeError, match="at least two emotions"):
        directions_from_dataset(llama, _dataset(3, 0, 0), layers="1")
    other = EmotionDirections(("awe",), (9,), np.ones((1, 1, 64), np.float32), "diffmean")
    with pytest.raises(EmoscopeError, match="share no"):
        direction_cosines(dirs, other)


def test_row_plan_steers_each_prompt_its_own_way(llama: Any) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2, 2, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=-1, keepdims=True)
    dirs = EmotionDirections(("joy", "fear"), (2, 3), vecs, "diffmean")
    prompts = ["i am", "today we", "you feel", "she is"]
    targets = ["joy", "fear", "fear", "joy"]
    plan = dirs.row_plan(targets, 6.0, [2, 3])
    assert plan[0].vector.shape == (4, 64)
    kw: dict[str, Any] = {"positions": "last+generated", "max_new_tokens": 5}
    batched = generate(llama, prompts, plan=plan, batch_size=3, **kw)
    one_by_one = [
        generate(llama, [p], plan=dirs.plan({t: 6.0}, [2, 3]), **kw)[0]
        for p, t in zip(prompts, targets, strict=True)
    ]
    assert batched == one_by_one
    plain = generate(llama, prompts, max_new_tokens=5)
    assert batched != plain
    with pytest.raises(EmoscopeError, match="per-row steering vector has 4 rows"):
        ids = llama.tokenizer(["i am"], return_tensors="pt")["input_ids"]
        with steering(llama, plan):
            llama.model(input_ids=ids)
    with pytest.raises(EmoscopeError, match="no emotions"):
        dirs.row_plan([], 1.0)


def test_last_and_generated_positions(llama: Any) -> None:
    ids = llama.tokenizer(["i am so happy today"], return_tensors="pt")["input_ids"]
    seen: list[Any] = []
    # the input of block 3 is hidden-state layer 2 after the steering hook on block 2
    block = llama.model.model.layers[2]
    handle = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        llama.model(input_ids=ids)
        v = np.ones(64, dtype=np.float32) / 8.0
        with steering(llama, [SteeringSpec(2, v, 2.0)], positions="last+generated"):
            llama.model(input_ids=ids)
            llama.model(input_ids=ids[:, :1])
        llama.model(input_ids=ids[:, :1])
    finally:
        handle.remove()
    base, first, second, base_one = seen
    diff = (first - base).abs().amax(-1)[0]
    assert float(diff[-1]) > 1e-3 and float(diff[:-1].max()) == 0.0
    assert float((second - base_one).abs().max()) > 1e-3


def test_degenerate_replies_never_reach_the_judge() -> None:
    lexicon = load_recognizer("lexicon")
    broken = "happy happy happy happy happy"
    # the judge alone would call the loop joy; judged replies must not
    assert lexicon.predict([broken])[0].label == "joy"
    got = judge_replies([broken, "", "I am so happy and glad about this wonderful day!"], lexicon)
    assert got == [None, None, "joy"]
    assert judge_replies(["Our Our Our Our Our"], "lexicon") == [None]


def test_evaluate_steering_counts_degenerate_as_failures(llama: Any) -> None:
    dirs = EmotionDirections(
        ("joy", "sadness"), (2,), np.stack([np.eye(64)[:1], np.eye(64)[1:2]]).astype(np.float32),
        "diffmean",
    )  # fmt: skip
    res = evaluate_steering(
        llama, dirs, "joy", ["i am", "today", "we feel"], alphas=(0, 40), recognizer="lexicon",
        max_new_tokens=6,
    )  # fmt: skip
    from emoscope.metrics import is_degenerate

    for row in res["rows"]:
        assert sum(row["recognised"].values()) == 3
        assert row["degenerate_share"] == row["recognised"].get("degenerate", 0) / 3
        assert row["expression_accuracy"] <= 1 - row["degenerate_share"] + 1e-9
        assert set(row) >= {"distinct_2", "repeated_3gram_rate", "longest_run"}
        n_deg = sum(is_degenerate(e["text"]) for e in row["examples"])
        assert n_deg == row["recognised"].get("degenerate", 0)


def _labelled_csv(folder: Path) -> Path:
    path = folder / "lab.csv"
    rows = ["text,label"] + [f"i am so happy {w},joy" for w in ("today", "here", "now")]
    rows += [f"i am sad {w},sadness" for w in ("today", "here", "now")]
    path.write_text("\n".join(rows) + "\n", "utf-8")
    return path


def test_steer_command_directions_from_dataset(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dfile = tmp_path / "d.safetensors"
    base = ["steer", "--model", str(llama_dir), "--max-new-tokens", "3", "--no-compare"]
    code, _, err = run_emoscope(
        [*base, "--directions-from", str(_labelled_csv(tmp_path)), "--layers", "2-3",
         "--emotion", "sadness", "--save-directions", str(dfile), "i am"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    saved = EmotionDirections.load(dfile)
    assert saved.emotions == ("joy", "sadness") and saved.layers == (2, 3)
    assert saved.meta["label_counts"] == {"joy": 3, "sadness": 3}
    # defaults chosen by a sweep travel with the directions file
    saved.meta.update({"default_layers": [3], "default_alpha": 5.0})
    saved.save(dfile)
    outj = tmp_path / "r.json"
    code, _, err = run_emoscope(
        [*base, "--directions", str(dfile), "--emotion", "joy", "--out", str(outj), "i am"], capsys
    )
    assert code == 0, err
    res = json.loads(outj.read_text())
    assert res["layers"] == [3] and res["weights"] == {"joy": 5.0}
    bad = tmp_path / "bad.csv"
    bad.write_text("words,other\nhello,x\n", "utf-8")
    assert_one_line_error(
        run_emoscope([*base, "--directions-from", str(bad), "hi"], capsys), "bad.csv"
    )
    assert_one_line_error(
        run_emoscope([*base, "--directions-from", "nosuchset", "hi"], capsys), "nosuchset"
    )
    assert_one_line_error(
        run_emoscope([*base, "--directions-from", str(_labelled_csv(tmp_path)), "--directions",
                      str(dfile), "hi"], capsys),
        "not both",
    )  # fmt: skip
    assert_one_line_error(
        run_emoscope([*base, "--directions-from", str(_labelled_csv(tmp_path)), "--emotion",
                      "fear", "--layers", "2", "hi"], capsys),
        "no direction for fear",
    )  # fmt: skip
    assert not (tmp_path / "never.safetensors").exists()
