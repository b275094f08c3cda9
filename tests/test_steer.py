"""Tests of emoscope.steer: direction maths on planted signals, steering hooks, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from emoscope.activations import Activations, layer_modules  # noqa: E402
from emoscope.cli.inside import register  # noqa: E402
from emoscope.errors import EmoscopeError  # noqa: E402
from emoscope.steer import (  # noqa: E402
    EmotionDirections,
    SteeringSpec,
    build_directions,
    compute_directions,
    continuation_perplexity,
    diff_of_means,
    elicitation_prompts,
    evaluate_steering,
    generate,
    pca_contrast,
    steering,
)
from inside_helpers import (  # noqa: E402
    assert_one_line_error,
    build_tiny_bert,
    no_temp_files,
    run_emoscope,
)

EMOTIONS = ("anger", "fear", "joy", "sadness")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _planted(
    seed: int = 0, d: int = 64, n_groups: int = 80, noise: float = 0.5
) -> tuple[np.ndarray, list[str], list[int], np.ndarray]:
    """Scenario groups with a large shared offset each, plus one planted direction per emotion.

    The emotion directions are random unit vectors made to sum to zero (so they are exactly
    what centring can recover).
    """
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(len(EMOTIONS), d))
    raw -= raw.mean(0)
    planted = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    xs, labels, groups = [], [], []
    for g in range(n_groups):
        offset = rng.normal(size=d) * 5.0  # scenario content, much larger than the signal
        for e, v in zip(EMOTIONS, planted, strict=True):
            xs.append(offset + 2.0 * v + rng.normal(size=d) * noise)
            labels.append(e)
            groups.append(g)
    return np.array(xs, dtype=np.float32), labels, groups, planted


def test_diff_of_means_recovers_planted_directions() -> None:
    x, labels, groups, planted = _planted()
    dirs = diff_of_means(x, labels, groups)
    for e, v in zip(EMOTIONS, planted, strict=True):
        assert np.linalg.norm(dirs[e]) == pytest.approx(1.0, abs=1e-5)
        assert _cos(dirs[e], v) > 0.95
    # Unbalanced groups (a scenario missing some emotions) are where grouping matters most:
    # drop 'joy' from half the groups; global centring then mixes in scenario content.
    keep = [
        i
        for i, (lab, g) in enumerate(zip(labels, groups, strict=True))
        if not (lab == "joy" and g % 2)
    ]
    xk = x[keep]
    lk = [labels[i] for i in keep]
    gk = [groups[i] for i in keep]
    grouped = diff_of_means(xk, lk, gk)
    joy = planted[EMOTIONS.index("joy")]
    assert _cos(grouped["joy"], joy) > 0.95
    with pytest.raises(EmoscopeError, match="group ids"):
        diff_of_means(x, labels, groups[:-1])
    with pytest.raises(EmoscopeError, match="no examples"):
        diff_of_means(x, labels, emotions=["disgust"])


def test_pca_contrast_recovers_planted_direction() -> None:
    rng = np.random.default_rng(1)
    d = 48
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    n = 200
    base = rng.normal(size=(2 * n, d)) * 1.0
    labels = ["joy"] * n + ["neutral"] * n
    x = base + np.outer([1.5] * n + [-1.5] * n, v)
    got = pca_contrast(x, labels, "joy")
    assert _cos(got, v) > 0.95  # sign: joy rows project higher
    pairs = [(i, n + i) for i in range(n)]
    got2 = pca_contrast(x, labels, "joy", pairs=pairs, seed=3)
    assert _cos(got2, v) > 0.95
    neg = pca_contrast(x, labels, "neutral")
    assert _cos(neg, v) < -0.95
    with pytest.raises(EmoscopeError, match="contrast class"):
        pca_contrast(x, labels, "fear")
    with pytest.raises(EmoscopeError, match="pairs"):
        pca_contrast(x, labels, "joy", pairs=[])


def test_compute_directions_both_methods_and_roundtrip(tmp_path: Path) -> None:
    x, labels, groups, planted = _planted(seed=2)
    acts = Activations((3, 5), "last", "synthetic", len(x), x.shape[1], {3: x, 5: -x})
    for method in ("diffmean", "pca"):
        dirs = compute_directions(acts, labels, method=method, groups=groups)
        assert dirs.vectors.shape == (4, 2, x.shape[1]) and dirs.layers == (3, 5)
        for e, v in zip(EMOTIONS, planted, strict=True):
            assert _cos(dirs.vector(e, 3), v) > 0.95
            assert _cos(dirs.vector(e, 5), -v) > 0.95
    path = dirs.save(tmp_path / "d.safetensors")
    back = EmotionDirections.load(path)
    assert back.emotions == EMOTIONS and back.layers == (3, 5) and back.method == "pca"
    np.testing.assert_array_equal(back.vectors, dirs.vectors)
    assert back.meta["n"] == len(x)
    with pytest.raises(EmoscopeError, match="no direction"):
        back.vector("awe", 3)
    with pytest.raises(EmoscopeError, match="layer"):
        back.vector("joy", 4)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(EmoscopeError, match="directions file"):
        EmotionDirections.load(tmp_path / "bad.safetensors")
    with pytest.raises(EmoscopeError, match="unknown method"):
        compute_directions(acts, labels, method="ica")
    # Without scenario pairing, PCA of random pairs is swamped by the scenario content.
    loose = compute_directions(acts, labels, method="pca", layers=[3])
    assert (
        max(abs(_cos(loose.vector(e, 3), v)) for e, v in zip(EMOTIONS, planted, strict=True)) < 0.9
    )


def test_plan_sums_directions() -> None:
    vecs = np.zeros((2, 1, 4), dtype=np.float32)
    vecs[0, 0, 0] = 1.0
    vecs[1, 0, 1] = 1.0
    dirs = EmotionDirections(("joy", "fear"), (2,), vecs, "diffmean")
    (spec,) = dirs.plan({"joy": 3.0, "fear": -2.0})
    np.testing.assert_allclose(spec.vector, [3.0, -2.0, 0.0, 0.0])
    assert spec.layer == 2 and spec.alpha == 1.0
    with pytest.raises(EmoscopeError):
        dirs.plan({})


# --------------------------------------------------------------------------------------------
# Hooks on a tiny Llama


def _block_io(llama: Any, layer: int, ids: Any) -> Any:
    """The input of block index ``layer`` (= hidden-state layer ``layer``) in one forward pass."""
    blocks = layer_modules(llama.model)
    seen: dict[str, Any] = {}

    def pre(_m: Any, args: Any, kwargs: Any) -> None:
        seen["next_in"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    handle = blocks[layer].register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            llama.model(input_ids=ids, use_cache=False)
    finally:
        handle.remove()
    return seen["next_in"]


def test_hook_adds_alpha_v_rms(llama: Any) -> None:
    ids = llama.tokenizer(["i am so happy today"], return_tensors="pt")["input_ids"]
    layer = 2  # output of block 2 is the input of block 3 (index 2)
    base = _block_io(llama, layer, ids)
    v = np.random.default_rng(0).normal(size=64).astype(np.float32)
    v /= np.linalg.norm(v)
    alpha = 3.0
    with steering(llama, [SteeringSpec(layer, v, alpha)]):
        steered = _block_io(llama, layer, ids)
    rms = base.pow(2).mean(-1, keepdim=True).sqrt()
    expected = base + alpha * rms * torch.from_numpy(v)
    torch.testing.assert_close(steered, expected, atol=1e-5, rtol=1e-5)
    after = _block_io(llama, layer, ids)
    torch.testing.assert_close(after, base)  # hooks gone: back to the unsteered stream


def test_positions(llama: Any) -> None:
    ids = llama.tokenizer(["i am so happy today"], return_tensors="pt")["input_ids"]
    base = _block_io(llama, 1, ids)
    v = np.ones(64, dtype=np.float32) / 8.0
    with steering(llama, [SteeringSpec(1, v, 2.0)], positions="last"):
        last = _block_io(llama, 1, ids)
    diff = (last - base).abs().amax(-1)[0]
    assert float(diff[-1]) > 1e-3 and float(diff[:-1].max()) == 0.0
    with steering(llama, [SteeringSpec(1, v, 2.0)], positions=[0, -2]):
        some = _block_io(llama, 1, ids)
    changed = ((some - base).abs().amax(-1)[0] > 0).tolist()
    assert changed == [True] + [False] * (len(changed) - 3) + [True, False]
    with steering(llama, [SteeringSpec(1, v, 2.0)], positions="generated"):
        first_pass = _block_io(llama, 1, ids)
        second_pass = _block_io(llama, 1, ids)
    torch.testing.assert_close(first_pass, base)
    assert float((second_pass - base).abs().max()) > 1e-3
    with pytest.raises(EmoscopeError, match="positions"):
        steering(llama, [], positions="middle")


def test_hooks_removed_after_exception_and_composition(llama: Any) -> None:
    blocks = layer_modules(llama.model)
    before = [set(b._forward_hooks) for b in blocks]
    v = np.ones(64, dtype=np.float32)
    with (
        pytest.raises(RuntimeError, match="boom"),
        steering(llama, [SteeringSpec(2, v, 1.0), SteeringSpec(3, v, 1.0)]),
    ):
        assert [len(b._forward_hooks) for b in blocks] != [len(s) for s in before]
        raise RuntimeError("boom")
    assert [set(b._forward_hooks) for b in blocks] == before
    ids = llama.tokenizer(["sad today"], return_tensors="pt")["input_ids"]
    base = _block_io(llama, 2, ids)
    a = np.random.default_rng(1).normal(size=64).astype(np.float32)
    b = np.random.default_rng(2).normal(size=64).astype(np.float32)
    a *= 0.5 / np.linalg.norm(a)
    b *= 0.5 / np.linalg.norm(b)
    with steering(llama, [SteeringSpec(2, a, 1.0)]), steering(llama, [SteeringSpec(2, b, 1.0)]):
        nested = _block_io(llama, 2, ids)
    with steering(llama, [SteeringSpec(2, a + b, 1.0)]):
        summed = _block_io(llama, 2, ids)
    # Nested hooks each scale by the RMS of the stream they see, so they compose additively
    # only to first order; the summed plan is exact.
    rms = base.pow(2).mean(-1, keepdim=True).sqrt()
    torch.testing.assert_close(summed, base + rms * torch.from_numpy(a + b), atol=1e-5, rtol=1e-5)
    assert _cos((nested - base)[0, -1].numpy(), a + b) > 0.9
    assert [set(blk._forward_hooks) for blk in blocks] == before
    with pytest.raises(EmoscopeError, match="layer 0"):
        steering(llama, [SteeringSpec(0, v, 1.0)])
    with pytest.raises(EmoscopeError, match="layer 9"):
        steering(llama, [SteeringSpec(9, v, 1.0)])


def test_generate_and_perplexity(llama: Any) -> None:
    prompts = ["i am so happy", "i am sad"]
    plain = generate(llama, prompts, max_new_tokens=4)
    again = generate(llama, prompts, max_new_tokens=4)
    assert plain == again and len(plain) == 2
    dirs = build_directions(llama, layers="1-3", emotions=("joy", "sadness"))
    assert dirs.vectors.shape == (2, 3, 64) and dirs.meta["source"] == "elicitation"
    plan = dirs.plan({"joy": 40.0})
    steered = generate(llama, prompts, plan=plan, max_new_tokens=4)
    assert steered != plain  # a large push along the direction changes the greedy tokens
    assert llama.tokenizer.padding_side == "right"  # restored after left-padded generation
    ppl = continuation_perplexity(llama, ["i am"], ["so happy"])
    # By hand: mean negative log-likelihood of the continuation tokens.
    text = llama.tokenizer.apply_chat_template(
        [{"role": "user", "content": "i am"}], tokenize=False, add_generation_prompt=True
    )
    p_ids = llama.tokenizer(text, add_special_tokens=False)["input_ids"]
    c_ids = llama.tokenizer(" so happy", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logp = torch.log_softmax(llama.model(input_ids=ids).logits[0], -1)
    nll = -sum(float(logp[len(p_ids) - 1 + i, t]) for i, t in enumerate(c_ids)) / len(c_ids)
    assert ppl[0] == pytest.approx(float(np.exp(nll)), rel=1e-4)
    assert np.isnan(continuation_perplexity(llama, ["i am"], [""])[0])


def test_evaluate_steering(llama: Any) -> None:
    dirs = build_directions(llama, layers="2-3", emotions=("joy", "sadness"))
    res = evaluate_steering(
        llama, dirs, "joy", ["i am", "today"], alphas=(0, 6), recognizer="lexicon",
        max_new_tokens=4,
    )  # fmt: skip
    assert [r["alpha"] for r in res["rows"]] == [0.0, 6.0]
    for r in res["rows"]:
        assert 0.0 <= r["expression_accuracy"] <= 1.0
        assert sum(r["recognised"].values()) == 2
        assert r["perplexity_median"] > 0
    assert res["layers"] == [2, 3] and res["recognizer"]


def test_elicitation_prompts_are_balanced() -> None:
    texts, labels, groups = elicitation_prompts(("joy", "fear"), ("a.", "b."))
    assert len(texts) == 4 and labels == ["joy", "fear", "joy", "fear"] and groups == [0, 0, 1, 1]
    assert "strong fear" in texts[1]


def test_steer_command_end_to_end(llama_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    dfile = tmp_path / "dirs.safetensors"
    res = runner.invoke(
        app,
        [
            "steer", "--model", str(llama_dir), "--emotion", "joy", "--alpha", "8", "--layers",
            "2-3", "--max-new-tokens", "4", "--save-directions", str(dfile), "--recognizer",
            "lexicon", "--eval-alphas", "0,8", "--out", str(tmp_path / "s.json"), "i am so happy",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        "unsteered:" in res.output and "steered:" in res.output and "expression acc." in res.output
    )
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["layers"] == [2, 3] and out["weights"] == {"joy": 8.0}
    assert out["outputs"][0]["recognised"] and len(out["evaluation"]["rows"]) == 2
    res2 = runner.invoke(
        app,
        [
            "steer", "--model", str(llama_dir), "--directions", str(dfile), "--emotion",
            "joy=4,sadness=2", "--positions", "last", "--no-compare", "--max-new-tokens", "3",
            "--layers", "2", "today",
        ],
    )  # fmt: skip
    assert res2.exit_code == 0, res2.output
    assert "unsteered:" not in res2.output
    bad = runner.invoke(app, ["steer", "--model", str(llama_dir), "--emotion", "joy=x", "hi"])
    assert bad.exit_code != 0 and "alpha" in str(bad.exception)


def test_emoscope_steer_entry_point(
    llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res" / "steer.json"
    code, stdout, _err = run_emoscope(
        ["steer", "--model", str(llama_dir), "--emotion", "joy", "--alpha", "8", "--layers",
         "2-3", "--max-new-tokens", "3", "--out", str(out), "i am so happy"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "steered:" in stdout
    assert json.loads(out.read_text())["layers"] == [2, 3] and no_temp_files(out.parent)
    base = ["steer", "--model", str(llama_dir), "--max-new-tokens", "2"]
    assert_one_line_error(run_emoscope([*base, "--emotion", "joy=x", "hi"], capsys), "alpha")
    assert_one_line_error(run_emoscope([*base, "--layers", "0", "hi"], capsys), "layer 0")
    assert_one_line_error(run_emoscope([*base, "--method", "ica", "hi"], capsys), "ica")
    assert_one_line_error(
        run_emoscope([*base, "--directions", str(tmp_path / "none.safetensors"), "hi"], capsys),
        "no such directions file",
    )
    bert = build_tiny_bert(tmp_path / "bert")
    capsys.readouterr()  # drop what saving the model printed
    assert_one_line_error(
        run_emoscope(["steer", "--model", str(bert), "hi"], capsys), "not a causal language model"
    )
