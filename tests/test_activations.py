"""Tests of emoscope.activations on tiny random Llama and BERT models loaded from disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from emoscope.activations import (
    Activations,
    LoadedModel,
    extract_activations,
    layer_modules,
    load_model,
    parse_layers,
    render_chat,
    token_activations,
)
from emoscope.errors import EmoscopeError
from inside_helpers import build_tiny_bert, build_tiny_gpt2

TEXTS = [
    "i am so happy today !",
    "sad",
    "what a wonderful day , i love it",
    "i hate this , it is terrible and i am furious",
    "oh really ?",
]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def test_load_model_kinds(llama: LoadedModel, bert_dir: Path) -> None:
    assert llama.kind == "decoder" and llama.causal
    assert (llama.n_layers, llama.hidden_size) == (4, 64)
    assert llama.default_pooling() == "last"
    bert = load_model(str(bert_dir))
    assert bert.kind == "encoder" and not bert.causal
    assert (bert.n_layers, bert.hidden_size) == (3, 32)
    assert bert.default_pooling() == "mean"
    assert len(layer_modules(llama.model, 4)) == 4
    assert len(layer_modules(bert.model, 3)) == 3


def test_random_init_differs_but_keeps_architecture(llama: LoadedModel, llama_dir: Path) -> None:
    ctrl = load_model(str(llama_dir), random_init=True, seed=1)
    assert ctrl.random_init and ctrl.n_layers == llama.n_layers
    w1 = llama.model.get_input_embeddings().weight.detach().numpy()
    w2 = ctrl.model.get_input_embeddings().weight.detach().numpy()
    assert w1.shape == w2.shape and not np.allclose(w1, w2)


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(EmoscopeError, match="cannot load model"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(EmoscopeError, match="model kind"):
        load_model(str(tmp_path), kind="seq2seq")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", [0, 1, 2, 3, 4]),
        (None, [0, 1, 2, 3, 4]),
        ("last", [4]),
        ("mid", [2]),
        ("1-3", [1, 2, 3]),
        ("0,2-3", [0, 2, 3]),
        (-1, [4]),
        ([3, 1, 1], [1, 3]),
    ],
)
def test_parse_layers(spec: str | int | list[int] | None, expected: list[int]) -> None:
    assert parse_layers(spec, 4) == expected


def test_parse_layers_errors() -> None:
    for bad in ("5", "3-1", "x", "1-9"):
        with pytest.raises(EmoscopeError):
            parse_layers(bad, 4)
    with pytest.raises(EmoscopeError):
        parse_layers("0", 4, allow_embeddings=False)
    assert parse_layers("all", 4, allow_embeddings=False) == [1, 2, 3, 4]


def test_hooks_match_hidden_states(llama: LoadedModel, bert_dir: Path) -> None:
    hs = extract_activations(llama, TEXTS, batch_size=2)
    hk = extract_activations(llama, TEXTS, batch_size=2, method="hooks")
    assert hs.layers == (0, 1, 2, 3, 4) and hk.layers == (1, 2, 3, 4)
    for lay in (1, 2, 3):
        np.testing.assert_allclose(hs[lay], hk[lay], atol=1e-5)
    # Llama normalises the last entry of hidden_states; the hook sees the raw block output.
    assert not np.allclose(hs[4], hk[4], atol=1e-3)
    bert = load_model(str(bert_dir))
    bs = extract_activations(bert, TEXTS)
    bk = extract_activations(bert, TEXTS, method="hooks")
    for lay in bk.layers:  # BERT has no final norm: every layer agrees
        np.testing.assert_allclose(bs[lay], bk[lay], atol=1e-5)


def test_batching_and_padding_do_not_change_results(llama: LoadedModel) -> None:
    singles = {}
    for pooling in ("last", "mean", "first"):
        one = extract_activations(llama, TEXTS, batch_size=1, pooling=pooling)
        many = extract_activations(llama, TEXTS, batch_size=5, pooling=pooling)
        singles[pooling] = one
        for lay in one.layers:
            np.testing.assert_allclose(one[lay], many[lay], atol=1e-4)
    left = llama.tokenizer.padding_side
    llama.tokenizer.padding_side = "left"
    try:
        lp = extract_activations(llama, TEXTS, batch_size=5, pooling="last")
    finally:
        llama.tokenizer.padding_side = left
    # Extraction pads on the right whatever the tokenizer says, so positions stay the same.
    assert llama.tokenizer.padding_side == left
    np.testing.assert_allclose(lp[2], singles["last"][2], atol=1e-4)


def test_pooling_matches_manual_computation(llama: LoadedModel) -> None:
    ids = [llama.tokenizer(t)["input_ids"] for t in TEXTS]
    states = token_activations(llama, ids, layers=[2])
    mean = extract_activations(llama, TEXTS, layers=[2], pooling="mean")
    last = extract_activations(llama, TEXTS, layers=[2], pooling="last")
    first = extract_activations(llama, TEXTS, layers=[2], pooling="first")
    for i, s in enumerate(states):
        assert s.shape == (1, len(ids[i]), 64)
        np.testing.assert_allclose(mean[2][i], s[0].mean(0), atol=1e-4)
        np.testing.assert_allclose(last[2][i], s[0, -1], atol=1e-4)
        np.testing.assert_allclose(first[2][i], s[0, 0], atol=1e-4)


def test_causal_token_states_equal_prefix_last_states(llama: LoadedModel) -> None:
    full = llama.tokenizer("i am so happy today")["input_ids"]
    states = token_activations(llama, [full], layers=[1, 3])[0]
    for cut in (2, 4):
        prefix = token_activations(llama, [full[:cut]], layers=[1, 3])[0]
        np.testing.assert_allclose(prefix[:, -1], states[:, cut - 1], atol=1e-4)


def test_stream_to_disk(llama: LoadedModel, tmp_path: Path) -> None:
    mem = extract_activations(llama, TEXTS, layers="1,3", batch_size=2)
    disk = extract_activations(llama, TEXTS, layers="1,3", batch_size=2, out_dir=tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "layer_001.npy", "layer_003.npy", "meta.json",
    ]  # fmt: skip
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["n"] == len(TEXTS) and meta["layers"] == [1, 3] and meta["pooling"] == "last"
    assert disk[1].dtype == np.float16 and isinstance(disk[1], np.memmap)
    np.testing.assert_allclose(disk[3].astype(np.float32), mem[3], rtol=2e-2, atol=2e-2)
    again = Activations.load(tmp_path / "a")
    assert again.layers == (1, 3) and again.n == len(TEXTS)
    sub = again.subset([0, 2])
    assert sub[1].shape == (2, 64) and sub[1].dtype == np.float32
    with pytest.raises(EmoscopeError, match="not extracted"):
        again.layer(2)
    with pytest.raises(EmoscopeError, match=r"meta\.json"):
        Activations.load(tmp_path)
    # A run that fails part-way leaves no meta.json, so a stale one cannot vouch for new files.
    with pytest.raises(EmoscopeError, match="pooling"):
        extract_activations(llama, TEXTS, layers="1", pooling="max", out_dir=tmp_path / "a")
    assert (tmp_path / "a" / "meta.json").is_file()  # bad input is rejected before any write

    def fail(done: int, total: int) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        extract_activations(llama, TEXTS, layers="1", batch_size=2, out_dir=tmp_path / "a",
                            progress=fail)  # fmt: skip
    with pytest.raises(EmoscopeError, match=r"meta\.json"):
        Activations.load(tmp_path / "a")


def test_extract_errors(llama: LoadedModel) -> None:
    with pytest.raises(EmoscopeError, match="no texts"):
        extract_activations(llama, [])
    with pytest.raises(EmoscopeError, match="pooling"):
        extract_activations(llama, TEXTS, pooling="max")
    with pytest.raises(EmoscopeError, match="method"):
        extract_activations(llama, TEXTS, method="magic")


def test_progress_and_hooks_removed(llama: LoadedModel) -> None:
    seen: list[tuple[int, int]] = []
    blocks = layer_modules(llama.model)
    # transformers installs its own output-capturing hooks; only ours must be gone afterwards.
    before = [set(b._forward_hooks) for b in blocks]
    extract_activations(
        llama, TEXTS, batch_size=2, method="hooks", progress=lambda d, n: seen.append((d, n))
    )
    assert seen[-1] == (5, 5) and len(seen) == 3
    assert [set(b._forward_hooks) for b in blocks] == before


def test_render_chat(llama: LoadedModel, bert_dir: Path) -> None:
    msgs = [{"role": "system", "content": "be calm"}, {"role": "user", "content": "hi"}]
    text = render_chat(llama.tokenizer, msgs)
    assert text.startswith("system : be calm") and text.rstrip().endswith("assistant :")
    bert = load_model(str(bert_dir))
    plain = render_chat(bert.tokenizer, msgs)
    assert plain == "System: be calm\n\nUser: hi\n\nAssistant:"
    assert render_chat(bert.tokenizer, msgs, add_generation_prompt=False).endswith("User: hi")


def test_gpt2_family(tmp_path: Path) -> None:
    """GPT-2 keeps its blocks at ``transformer.h`` and returns tuples from them."""
    import torch

    from emoscope.steer import SteeringSpec, steering

    gpt2 = load_model(str(build_tiny_gpt2(tmp_path / "gpt2")))
    assert gpt2.kind == "decoder" and gpt2.n_layers == 3 and gpt2.hidden_size == 32
    assert gpt2.default_pooling() == "last"
    hs = extract_activations(gpt2, TEXTS, layers="1,2")
    hk = extract_activations(gpt2, TEXTS, layers="1,2", method="hooks")
    for lay in (1, 2):
        np.testing.assert_allclose(hs[lay], hk[lay], atol=1e-5)
    ids = gpt2.tokenizer(["i am so happy"], return_tensors="pt")["input_ids"]
    blocks = layer_modules(gpt2.model, gpt2.n_layers)

    def stream_after_block_0() -> torch.Tensor:
        seen: list[torch.Tensor] = []

        def pre(_m: object, args: tuple[torch.Tensor, ...], kwargs: dict[str, object]) -> None:
            seen.append(args[0].detach().clone())

        handle = blocks[1].register_forward_pre_hook(pre, with_kwargs=True)
        try:
            with torch.no_grad():
                gpt2.model(input_ids=ids)
        finally:
            handle.remove()
        return seen[0]

    base = stream_after_block_0()
    # Not a constant vector: the pre-LayerNorm blocks would cancel a shift along (1, ..., 1).
    v = np.random.default_rng(0).normal(size=32).astype(np.float32)
    v /= np.linalg.norm(v)
    with steering(gpt2, [SteeringSpec(1, v, 2.0)]):
        steered = stream_after_block_0()
    rms = base.pow(2).mean(-1, keepdim=True).sqrt()
    torch.testing.assert_close(steered, base + 2.0 * rms * torch.from_numpy(v))
    torch.testing.assert_close(stream_after_block_0(), base)  # the hook is gone
