"""LoRA fine-tuning on PRC prompts: masking, a loss-reducing run on a tiny Llama, the adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_helpers import ChatServer

from emoscope.errors import EmoscopeError
from emoscope.llm.hf import HFBackend
from emoscope.llm.openai import OpenAIBackend
from emoscope.llm.sft import SFTConfig, SFTExample, build_examples, encode_example, train_lora

WORDS = {"joy": "happy glad great", "anger": "angry hate mad"}


def examples(n: int = 8) -> list[SFTExample]:
    out = []
    for i in range(n):
        label = "joy" if i % 2 == 0 else "anger"
        msgs = [
            {"role": "system", "content": "### Available emotion labels: joy, anger"},
            {"role": "user", "content": f'Which label fits "{WORDS[label]} {i}"?'},
        ]
        # Difficulties put items 0-3 in the easy bucket.
        out.append(SFTExample(msgs, label, difficulty=0.1 if i < n // 2 else 0.9, id=str(i)))
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_llama: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def test_loss_is_masked_to_the_answer(tokenizer: object) -> None:
    msgs = examples(1)[0].messages
    ids, labels, cut = encode_example(tokenizer, msgs, "joy", max_seq_len=512)
    answer = tokenizer("joy", add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    n = len(answer) + 1
    assert not cut and len(ids) == len(labels)
    assert labels[:-n] == [-100] * (len(ids) - n)
    assert labels[-n:] == ids[-n:] == [*answer, tokenizer.eos_token_id]  # type: ignore[attr-defined]
    # The prompt part is exactly the inference prompt.
    from emoscope.llm.hf import render_chat

    prompt = render_chat(tokenizer, msgs, chat_template_kwargs={"enable_thinking": False})
    assert ids[:-n] == tokenizer(prompt, add_special_tokens=False)["input_ids"]  # type: ignore[operator]


def test_long_prompts_lose_their_beginning(tokenizer: object) -> None:
    msgs = [{"role": "user", "content": "word " * 400 + "QUESTION"}]
    ids, labels, cut = encode_example(tokenizer, msgs, "anger", max_seq_len=64)
    assert cut and len(ids) == len(labels) == 64
    assert labels[0] == -100 and labels[-1] == tokenizer.eos_token_id  # type: ignore[attr-defined]
    text = tokenizer.decode(ids)  # type: ignore[attr-defined]
    assert "QUESTION" in text and text.rstrip().endswith("anger<|end|>")
    with pytest.raises(EmoscopeError, match="cannot hold the answer"):
        encode_example(tokenizer, msgs, "anger", max_seq_len=2)


def tiny_lora_config(tiny_llama: Path, **changes: object) -> SFTConfig:
    """A LoRA run on the tiny model that learns in a few steps (3 epochs, high rate)."""
    settings: dict[str, object] = {
        "base_model": str(tiny_llama),
        "prompt": "zero-shot",
        "retrieve": 0,
        "lora_r": 8,
        "lora_alpha": 16,
        "lr": 2e-2,
        "warmup_ratio": 0.0,
        "epochs": 3,
        "batch_size": 2,
        "grad_accum": 1,
        "neftune_alpha": 0.0,
        "device": "cpu",
        "seed": 1,
    }
    return SFTConfig(**{**settings, **changes})  # type: ignore[arg-type]


def test_lora_training_reduces_the_loss_and_saves_an_adapter(
    tiny_llama: Path, tmp_path: Path
) -> None:
    cfg = tiny_lora_config(tiny_llama, max_grad_norm=1.0)
    out = tmp_path / "adapter"
    log = train_lora(examples(), cfg, out, prompt_settings={"variant": "zero-shot"})
    assert log["loss_after"] < 0.2 * log["loss_before"], log
    # Curriculum: epoch 1 sees the easier half, then everything.
    assert [e["items"] for e in log["epochs"]] == [4, 8, 8]
    assert log["optimizer_steps"] == 2 + 4 + 4
    for name in ("adapter_config.json", "adapter_model.safetensors", "emoscope_sft.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "emoscope_sft.json").read_text())
    assert saved["config"]["lora_r"] == 8 and saved["prompt"] == {"variant": "zero-shot"}
    assert saved["base_model"] == str(tiny_llama.resolve())
    assert not list(tmp_path.glob(".adapter.*"))  # the temporary folder is gone

    # The adapter folder loads as a model: base from adapter_config.json, LoRA applied.
    tuned = HFBackend(str(out), device="cpu")
    assert tuned.adapter == str(out) and tuned.base_model == str(tiny_llama.resolve())
    conv = [examples(1)[0].messages]
    assert tuned.generate(conv, max_new_tokens=3)[0].text.startswith("joy")
    # With the adapter switched off it answers like the untouched base model.
    base = HFBackend(str(tiny_llama), device="cpu").generate(conv, max_new_tokens=5)[0].text
    assert tuned.base_view().generate(conv, max_new_tokens=5)[0].text == base


def test_a_frozen_adapter_is_merged_and_merged_again_after_the_base_view(
    tiny_llama: Path, tmp_path: Path
) -> None:
    import numpy as np

    from emoscope.models import _adapter_merged, load_causal_lm

    out = tmp_path / "adapter"
    train_lora(examples(), tiny_lora_config(tiny_llama, epochs=1, curriculum="none"), out)
    tuned = HFBackend(str(out), device="cpu")
    conv = [examples(1)[0].messages]
    assert _adapter_merged(tuned.lm)
    merged = tuned.score(conv, ["joy", "anger"])[0]
    tuned.base_view().generate(conv, max_new_tokens=2)  # PEFT unmerges to switch it off
    assert _adapter_merged(tuned.lm)
    np.testing.assert_allclose(tuned.score(conv, ["joy", "anger"])[0], merged, atol=1e-5)
    tuned.lm.unmerge_adapter()
    assert not _adapter_merged(tuned.lm)
    # Merged or not, the adapter gives the same scores (up to float rounding), and they
    # differ from the base model's.
    np.testing.assert_allclose(tuned.score(conv, ["joy", "anger"])[0], merged, atol=1e-4)
    with tuned.lm.disable_adapter():
        base = tuned.score(conv, ["joy", "anger"])[0]
    assert np.abs(base - merged).max() > 1e-2
    # Not merged when it is to be trained further, or when asked not to.
    assert not _adapter_merged(load_causal_lm(str(out), device="cpu", trainable_adapter=True).model)
    assert not _adapter_merged(load_causal_lm(str(out), device="cpu", merge_adapter=False).model)


def test_build_examples_from_meld_with_cues_and_self_excluding_retrieval(
    mini_data_root: Path, chat_server: ChatServer, tmp_path: Path
) -> None:
    cfg = SFTConfig(
        base_model="unused",
        data_root=str(mini_data_root),
        limit=12,
        prompt="prc",
        retrieve=2,
        cache_dir=str(tmp_path / "cache"),
    )
    cue_llm = OpenAIBackend("scripted", base_url=chat_server.url)
    items = build_examples(cfg, cue_backend=cue_llm)
    from emoscope.datasets import load_dataset

    data = load_dataset("meld", "train", root=mini_data_root).limit(12)
    assert [it.response for it in items] == [e.labels[0] for e in data.examples]
    assert [it.id for it in items] == [e.id for e in data.examples]
    assert len({it.difficulty for it in items}) > 1
    for it in items:
        system = it.messages[0]["content"]
        assert "### Similar utterances with their emotion labels\n1. " in system
        assert "\n2. " in system and "\n3. " not in system
        assert it.cues["explicit_emotion"].startswith("Outwardly")
        assert it.messages[1]["content"].startswith("Based on the conversation above")
    # Every utterance's own store item is excluded: check against the store directly.
    from emoscope.retrieval import DemonstrationStore, Query, item_id

    store = DemonstrationStore()
    store.add_dataset(data, source="meld-train")
    hits = store.search([Query.from_example(e, source="meld-train") for e in data.examples], k=2)
    for e, row in zip(data.examples, hits, strict=True):
        assert item_id("meld-train", e.id) not in {h.id for h in row}  # type: ignore[arg-type]
    assert len(list((tmp_path / "cache" / "cues").glob("*.json"))) == len(data.dialogues or [])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_model": ""}, "needs a base model"),
        ({"prompt": "cot"}, "unknown prompt variant"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lora_dropout": 1.5}, "lora_dropout"),
        ({"prompt": "zero-shot", "retrieve": 3}, "zero-shot prompt shows no demonstrations"),
        ({"curriculum": "random"}, "unknown curriculum strategy"),
        ({"epochs": 1, "n_buckets": 2}, "never reaches the full data"),
        ({"length_group": 0}, "length_group must be at least 1"),
    ],
)
def test_bad_configs(changes: dict[str, object], message: str) -> None:
    cfg = SFTConfig(**{"base_model": "m", **changes})  # type: ignore[arg-type]
    with pytest.raises(EmoscopeError, match=message):
        cfg.check()


def test_length_grouped_micro_batches_pad_less_and_keep_every_item_once() -> None:
    from emoscope.llm.sft import _micro_batches

    items = [7, 3, 9, 1, 4, 8, 2, 6, 0, 5]
    lengths = [10, 200, 30, 180, 50, 160, 70, 140, 90, 120]  # aligned with items
    plain = _micro_batches(items, lengths, batch_size=2)
    assert plain == [[7, 3], [9, 1], [4, 8], [2, 6], [0, 5]]
    grouped = _micro_batches(items, lengths, batch_size=2, length_group=2)
    # Windows of 4 items, each sorted longest first; the last window holds the remaining two.
    assert grouped == [[3, 1], [9, 7], [8, 6], [2, 4], [5, 0]]
    assert sorted(i for b in grouped for i in b) == sorted(items)
    size = dict(zip(items, lengths, strict=True))

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(size[i] for i in b) for b in batches)

    assert padded(grouped) < padded(plain)
    assert _micro_batches(items, lengths, 3, length_group=1) == [
        [7, 3, 9], [1, 4, 8], [2, 6, 0], [5]
    ]  # fmt: skip
    with pytest.raises(EmoscopeError, match="10 items but 2 lengths"):
        _micro_batches(items, lengths[:2], 2)


def test_held_out_loss_per_epoch_and_resume_from_an_epoch_checkpoint(
    tiny_llama: Path, tmp_path: Path
) -> None:
    cfg = tiny_lora_config(tiny_llama, curriculum="none", bf16_autocast=True)
    train, held = examples(8), examples(10)[8:]
    full = train_lora(train, cfg, tmp_path / "a", held_out=held, checkpoint_dir=tmp_path / "ck")
    assert [e["epoch"] for e in full["epochs"]] == [1, 2, 3]
    assert all(e["held_out_loss"] > 0 and e["examples_per_second"] > 0 for e in full["epochs"])
    assert full["epochs"][-1]["held_out_loss"] < full["held_out_loss_before"]
    # A run over the finished checkpoint trains nothing more and keeps the log.
    again = train_lora(train, cfg, tmp_path / "b", held_out=held, checkpoint_dir=tmp_path / "ck")
    assert again["epochs"] == full["epochs"] and again["optimizer_steps"] == 12
    assert again["loss_after"] == pytest.approx(full["loss_after"], rel=1e-3)
    # Cut after epoch 1 (as a session end would): a rerun trains epochs 2 and 3 only.
    cfg1 = SFTConfig(**{**cfg.__dict__, "epochs": 1})
    train_lora(train, cfg1, tmp_path / "c", held_out=held, checkpoint_dir=tmp_path / "ck1")
    resumed = train_lora(train, cfg, tmp_path / "d", held_out=held, checkpoint_dir=tmp_path / "ck1")
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert resumed["optimizer_steps"] == 12


def test_a_run_cut_inside_an_epoch_continues_at_the_next_micro_batch(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emoscope.llm.sft as sft

    cfg = tiny_lora_config(tiny_llama, curriculum="none")
    train, held = examples(8), examples(10)[8:]
    full = train_lora(train, cfg, tmp_path / "a", held_out=held)
    saves: list[dict[str, object]] = []
    real_save = sft._save_checkpoint

    def cut_after_second_step(*args: object) -> None:
        real_save(*args)  # type: ignore[arg-type]
        state = args[-1]
        assert isinstance(state, dict)
        saves.append(state)
        if state.get("partial") and state["step"] == 6:
            raise KeyboardInterrupt  # the session ends here, inside epoch 2

    monkeypatch.setattr(sft, "_save_checkpoint", cut_after_second_step)
    with pytest.raises(KeyboardInterrupt):
        train_lora(
            train, cfg, tmp_path / "b", held_out=held, checkpoint_dir=tmp_path / "ck",
            checkpoint_steps=2,
        )  # fmt: skip
    assert [s["step"] for s in saves] == [2, 4, 6]  # mid-epoch, epoch end, mid-epoch
    assert not (tmp_path / "b").exists()
    monkeypatch.setattr(sft, "_save_checkpoint", real_save)
    messages: list[str] = []
    resumed = train_lora(
        train, cfg, tmp_path / "c", held_out=held, checkpoint_dir=tmp_path / "ck",
        checkpoint_steps=2, progress=messages.append,
    )  # fmt: skip
    assert any("micro-batch" in m and "of epoch 2" in m for m in messages)
    assert resumed["optimizer_steps"] == full["optimizer_steps"] == 12
    assert [e["items"] for e in resumed["epochs"]] == [e["items"] for e in full["epochs"]]
    # Same data order, optimiser state and random state: the same training, step for step.
    for a, b in zip(resumed["epochs"], full["epochs"], strict=True):
        assert a["mean_loss"] == pytest.approx(b["mean_loss"], rel=1e-4)
    assert resumed["loss_after"] == pytest.approx(full["loss_after"], rel=1e-4)


def test_answer_loss_equals_the_full_models_loss_with_the_head_only_where_answers_are(
    tiny_llama: Path, tokenizer: object
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from emoscope.llm.sft import _collate, answer_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    # rows of different lengths: right padding puts their answers at different positions
    encoded = [encode_example(tokenizer, e.messages, e.response, 512)[:2] for e in examples(3)]
    ids, labels = encoded[1]
    encoded[1] = ([*ids[:4], *ids], [-100] * 4 + labels)  # a longer prompt
    batch = _collate(encoded, int(tokenizer.pad_token_id))
    assert len({len(x) for x, _ in encoded}) > 1
    seen: list[int] = []
    hook = model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    try:
        fast = answer_loss(model, batch)
        fast.backward()
        grad_fast = model.model.layers[0].mlp.up_proj.weight.grad.clone()
        model.zero_grad()
        full = model(**batch).loss
        full.backward()
        grad_full = model.model.layers[0].mlp.up_proj.weight.grad
    finally:
        hook.remove()
    assert torch.allclose(fast, full, atol=1e-5)
    assert torch.allclose(grad_fast, grad_full, atol=1e-5)
    n_answer_positions = int((batch["labels"][:, 1:] != -100).any(0).sum())
    assert seen[0] == n_answer_positions < batch["input_ids"].shape[1] - 1
