"""Helpers of the LLM tests: a tiny random Llama saved like a Hub model, a loopback chat server."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<pad>", "<unk>", "<s>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def build_tiny_llama(folder: Path, *, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained on the prompt templates."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [
        resources.files("emoscope").joinpath(f"data/prompts/{n}.toml").read_text("utf-8")
        for n in ("meld", "emorynlp", "generic")
    ]
    corpus += ["neutral joy surprise anger sadness disgust fear joyful peaceful powerful"] * 20
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="<|end|>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        # Wide enough initial weights that the frozen output layer can express a confident
        # answer once LoRA moves the hidden states (with 0.02 the reachable logit margin is ~1).
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------------------------
# A loopback server speaking the OpenAI chat-completions protocol
# ------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """What the server sends back for one request."""

    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(text: str, prompt_tokens: int = 11, completion_tokens: int = 3) -> dict[str, Any]:
    """A chat-completions response body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
    }


_LABEL_WORDS = {
    "happy": "joy",
    "glad": "joy",
    "great": "joy",
    "love": "joy",
    "sad": "sadness",
    "sorry": "sadness",
    "angry": "anger",
    "hate": "anger",
    "scared": "fear",
    "afraid": "fear",
    "wow": "surprise",
    "gross": "disgust",
}


def emotion_script(request: dict[str, Any], n: int) -> Reply:
    """A deterministic 'LLM': JSON cues for stage-1 prompts, a keyword label for final prompts."""
    text = "\n".join(m["content"] for m in request["messages"])
    if '"ExplicitEmotion"' in text:
        focus = text.split("### Focus utterance ###")[1].split("###")[0].strip()
        body = {
            "ExplicitEmotion": f"Outwardly the speaker says: {focus}",
            "ImplicitEmotion": "Inside they seem to want reassurance from the others.",
        }
        return Reply(body=completion(json.dumps(body), 40, 20))
    if '"Profile"' in text:
        who = re.search(r"describe the character of the speaker (.+?):", text)
        name = who.group(1) if who else "?"
        return Reply(body=completion(json.dumps({"Profile": f"{name} is lively and direct."}), 50))
    utterance = re.findall(r'in (?:the utterance )?"(.*)"\?', text)
    said = utterance[-1].lower() if utterance else ""
    label = next((lab for w, lab in _LABEL_WORDS.items() if w in said.split()), "neutral")
    return Reply(body=completion(label, 100, 2))


class ChatServer:
    """A threaded HTTP server on 127.0.0.1 answering ``POST /v1/chat/completions``.

    ``script(request_json, n)`` decides each reply (``n`` counts requests from 0). The server
    records every request and the largest number of requests in flight at once.
    """

    def __init__(self, script: Callable[[dict[str, Any], int], Reply] = emotion_script) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    n = len(owner.requests)
                    owner.requests.append(payload)
                    owner.headers.append(dict(self.headers))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if self.path != "/v1/chat/completions":
                        reply = Reply(404, {"error": {"message": f"no route {self.path}"}})
                    else:
                        reply = owner.script(payload, n)
                    if reply.delay:
                        time.sleep(reply.delay)
                finally:
                    # Counted as done before replying, so the client never sees it still open.
                    with owner._lock:
                        owner.in_flight -= 1
                data = (
                    reply.body.encode()
                    if isinstance(reply.body, str)
                    else json.dumps(reply.body or {}).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                # The client may have given up already (timeout tests).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


# Fixtures, imported by the conftest files that use them (tests/llm, tests/audit).


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A fresh loopback chat server (the emotion script by default)."""
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "EMOSCOPE_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("BACKEND", "MODEL", "PROMPT", "RETRIEVE", "STORE", "TAXONOMY", "CACHE_DIR"):
        monkeypatch.delenv(f"EMOSCOPE_LLM_{name}", raising=False)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Torch on one intra-op thread inside the block (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
