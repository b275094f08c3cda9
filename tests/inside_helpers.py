"""Tiny random models for the tests (activations, probes, steering, stimuli; conftest's BERT).

Every model is built from a config with random weights, saved to a folder and loaded back
through the real ``from_pretrained`` code path by the code under test. The default seed is not
0, so that the random-init control of the probes (seed 0 by default) differs from the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORDS = [
    "i",
    "am",
    "so",
    "happy",
    "glad",
    "great",
    "love",
    "wonderful",
    "fun",
    "sad",
    "sorry",
    "miss",
    "cry",
    "terrible",
    "lost",
    "alone",
    "angry",
    "hate",
    "mad",
    "furious",
    "scared",
    "afraid",
    "fear",
    "worried",
    "nervous",
    "wow",
    "what",
    "really",
    "surprise",
    "oh",
    "gross",
    "disgusting",
    "eww",
    "okay",
    "the",
    "a",
    "is",
    "it",
    "was",
    "that",
    "this",
    "to",
    "and",
    "we",
    "they",
    "he",
    "she",
    "no",
    "yes",
    "not",
    "today",
    "here",
    "there",
    "you",
    "feel",
    "situation",
    "react",
    "answer",
    "sentence",
    "positive",
    "negative",
    "anger",
    "disgust",
    "joy",
    "sadness",
    "neutral",
    "which",
    "emotion",
    "does",
    "express",
    "one",
    "word",
    "from",
    "list",
    "text",
    "with",
    ".",
    ",",
    "!",
    "?",
    ":",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "0",
    "+",
    "=",
    "number",
    "only",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def _word_tokenizer() -> tuple[Any, dict[str, int]]:
    """A word-level tokenizer over :data:`WORDS` with a chat template, and its vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", "system", "user", "assistant"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*specials, *WORDS]))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok, vocab


def build_tiny_gpt2(folder: Path, *, layers: int = 3, hidden: int = 32, seed: int = 1234) -> Path:
    """A randomly initialised GPT-2 (``transformer.h`` blocks, learned positions, final LN)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tok, vocab = _word_tokenizer()
    config = GPT2Config(
        vocab_size=len(vocab), n_embd=hidden, n_layer=layers, n_head=4, n_positions=256,
        bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"],
    )  # fmt: skip
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_llama(folder: Path, *, layers: int = 4, hidden: int = 64, seed: int = 1234) -> Path:
    """A randomly initialised Llama with a word-level tokenizer and a chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, vocab = _word_tokenizer()
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_tiny_bert(
    folder: Path,
    *,
    layers: int = 3,
    hidden: int = 32,
    seed: int = 1234,
    max_positions: int = 128,
    words: Sequence[str] = WORDS,
) -> Path:
    """A randomly initialised BERT encoder with a WordPiece vocabulary over ``words``."""
    import torch
    import transformers
    from transformers import BertConfig, BertModel

    fast_tokenizer: Any = transformers.BertTokenizerFast  # type: ignore[attr-defined]

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words)]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    tok = fast_tokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_emoscope(args: list[str], capsys: object) -> tuple[int, str, str]:
    """Run ``emoscope ARGS`` through the real entry point; return (exit code, stdout, stderr)."""
    import pytest

    from emoscope import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out = capsys.readouterr()  # type: ignore[attr-defined]
    code = exc.value.code
    return (code if isinstance(code, int) else (0 if code is None else 1)), out.out, out.err


def assert_one_line_error(result: tuple[int, str, str], fragment: str) -> None:
    """Exit code 2 and exactly one ``error: ...`` line on stderr that contains ``fragment``."""
    code, out, err = result
    assert code == 2, (out, err)
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def no_temp_files(folder: Path) -> bool:
    """Whether ``folder`` holds no leftover temporary files of atomic writes."""
    return not [p for p in folder.rglob(".*.tmp")]
